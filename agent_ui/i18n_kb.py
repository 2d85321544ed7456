"""Citizen-page texts of the public service guides (办事指南), Chinese and Mongolian.

TRANSLATIONS NEED REVIEW BY A NATIVE SPEAKER (as agent_ui/i18n.py says of its own): written
by a non-native engineer; the romanisation above each entry (same scheme as i18n.py) says what
was meant."""

from __future__ import annotations

KB_CATALOG: dict[str, dict[str, str]] = {
    "nav_guides": {
        "zh-Hans": "办事指南",
        # kereg-iyen bUtUgekU jiGaburi
        "mn-Mong": "ᠬᠡᠷᠡᠭ ᠢᠶᠡᠨ ᠪᠦᠲᠦᠭᠡᠬᠦ ᠵᠢᠭᠠᠪᠤᠷᠢ",
    },
    "guides_intro": {
        "zh-Hans": "查询政务服务事项的办理条件、材料、流程和时限。",
        # kereg bUtUgekU nOkOcel, material, jam ba qugucag|a-yi qayiju bolon|a.
        "mn-Mong": "ᠬᠡᠷᠡᠭ ᠪᠦᠲᠦᠭᠡᠬᠦ ᠨᠦᠬᠦᠴᠡᠯ᠂ ᠮᠠᠲ᠋ᠧᠷᠢᠶᠠᠯ᠂ ᠵᠠᠮ ᠪᠠ ᠬᠤᠭᠤᠴᠠᠭ᠎ᠠ ᠶᠢ ᠬᠠᠶᠢᠵᠤ ᠪᠣᠯᠣᠨ᠎ᠠ᠃",
    },
    "guides_search": {
        "zh-Hans": "搜索",
        # qayiqu
        "mn-Mong": "ᠬᠠᠶᠢᠬᠤ",
    },
    "guides_query": {
        "zh-Hans": "事项名称或关键词",
        # kereg-Un ner-e buyu gol Uge
        "mn-Mong": "ᠬᠡᠷᠡᠭ ᠦᠨ ᠨᠡᠷᠡ ᠪᠤᠶᠤ ᠭᠣᠣᠯ ᠦᠭᠡ",
    },
    "guides_none": {
        "zh-Hans": "没有找到相关指南。可拨打12345咨询。",
        # oldaqu Ugei. 12345-du utasu-dan asagun|a uu.
        "mn-Mong": "ᠣᠯᠳᠠᠬᠤ ᠦᠭᠡᠢ᠃ 12345 ᠳᠤ ᠤᠲᠠᠰᠤᠳᠠᠵᠤ ᠠᠰᠠᠭᠤᠨ᠎ᠠ ᠤᠤ᠃",
    },
    "guides_other_language": {
        "zh-Hans": "蒙古文版本",
        # kitad bicig-Un qubilburi (on a Mongolian page the other version is the Chinese one)
        "mn-Mong": "ᠬᠢᠲᠠᠳ ᠪᠢᠴᠢᠭ ᠦᠨ ᠬᠤᠪᠢᠯᠪᠤᠷᠢ",
    },
    "guides_back": {"zh-Hans": "返回指南列表", "mn-Mong": "ᠵᠢᠭᠠᠪᠤᠷᠢ ᠳᠤ ᠪᠤᠴᠠᠬᠤ"},
    "kind_guide_title": {"zh-Hans": "办事指南", "mn-Mong": "ᠵᠢᠭᠠᠪᠤᠷᠢ"},
    "kind_faq_title": {"zh-Hans": "常见问题", "mn-Mong": "ᠶᠡᠷᠦ ᠶᠢᠨ ᠠᠰᠠᠭᠤᠯᠲᠠ"},
    # the standard fields of a guide
    "f_item_name": {"zh-Hans": "事项名称", "mn-Mong": "ᠬᠡᠷᠡᠭ ᠦᠨ ᠨᠡᠷᠡ"},
    "f_item_code": {"zh-Hans": "事项编码", "mn-Mong": "ᠬᠡᠷᠡᠭ ᠦᠨ ᠺᠣᠳ᠋"},
    "f_authority": {"zh-Hans": "实施主体", "mn-Mong": "ᠬᠡᠷᠡᠭᠵᠢᠭᠦᠯᠬᠦ ᠪᠠᠶᠢᠭᠤᠯᠤᠯᠭ᠎ᠠ"},
    "f_conditions": {"zh-Hans": "申请条件", "mn-Mong": "ᠮᠡᠳᠦᠭᠦᠯᠬᠦ ᠨᠦᠬᠦᠴᠡᠯ"},
    "f_materials": {"zh-Hans": "申请材料", "mn-Mong": "ᠮᠡᠳᠦᠭᠦᠯᠬᠦ ᠮᠠᠲ᠋ᠧᠷᠢᠶᠠᠯ"},
    "f_process": {"zh-Hans": "办理流程", "mn-Mong": "ᠪᠦᠲᠦᠭᠡᠬᠦ ᠵᠠᠮ"},
    "f_time_limit": {"zh-Hans": "办理时限", "mn-Mong": "ᠪᠦᠲᠦᠭᠡᠬᠦ ᠬᠤᠭᠤᠴᠠᠭ᠎ᠠ"},
    "f_fees": {"zh-Hans": "收费标准", "mn-Mong": "ᠬᠤᠷᠢᠶᠠᠬᠤ ᠲᠥᠯᠦᠪᠦᠷᠢ"},
    "f_phone": {"zh-Hans": "咨询电话", "mn-Mong": "ᠯᠠᠪᠯᠠᠬᠤ ᠤᠲᠠᠰᠤ"},
    "f_legal_basis": {"zh-Hans": "法律依据", "mn-Mong": "ᠬᠠᠤᠯᠢ ᠶᠢᠨ ᠦᠨᠳᠦᠰᠦ"},
    "f_question": {"zh-Hans": "问题", "mn-Mong": "ᠠᠰᠠᠭᠤᠯᠲᠠ"},
    "f_answer": {"zh-Hans": "解答", "mn-Mong": "ᠬᠠᠷᠢᠭᠤ"},
}
