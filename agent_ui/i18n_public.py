"""Messages of the public 曝光纠错 column and of the rating's “resolved” question: Simplified
Chinese and Mongolian in traditional script (joined to agent_ui.i18n.CATALOG).

TRANSLATIONS NEED REVIEW BY A NATIVE SPEAKER, like the rest of the catalog (same romanisation
in the comment above each entry; see agent_ui/i18n.py)."""

from __future__ import annotations

PUBLIC_CATALOG: dict[str, dict[str, str]] = {
    "nav_public": {
        "zh-Hans": "曝光纠错",
        # ile bolgaju jasaqu
        "mn-Mong": "ᠢᠯᠡ ᠪᠣᠯᠭᠠᠵᠤ ᠵᠠᠰᠠᠬᠤ",
    },
    "public_title": {
        "zh-Hans": "曝光纠错",
        # ile bolgaju jasaqu
        "mn-Mong": "ᠢᠯᠡ ᠪᠣᠯᠭᠠᠵᠤ ᠵᠠᠰᠠᠬᠤ",
    },
    "public_intro": {
        "zh-Hans": (
            "这里公开部分市民诉求、承办单位的答复和办理用时。"
            "公开的内容经审定，已去除姓名、电话、门牌号等个人信息。"
        ),
        # ende irgen-U guyucilal ba qarigucaqu bayigululg|a-yin qarigu-yi ile bolgan|a. obog
        # ner|e, utasu, qayig-un Dugar-i ile bolgaqu Ugei.
        "mn-Mong": (
            "ᠡᠨᠳᠡ ᠢᠷᠭᠡᠨ ᠦ ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠪᠠ ᠬᠠᠷᠢᠭᠤᠴᠠᠬᠤ ᠪᠠᠶᠢᠭᠤᠯᠤᠯᠭ᠎ᠠ ᠶᠢᠨ ᠬᠠᠷᠢᠭᠤ ᠶᠢ ᠢᠯᠡ ᠪᠣᠯᠭᠠᠨ᠎ᠠ᠃ "
            "ᠣᠪᠣᠭ ᠨᠡᠷ᠎ᠡ᠂ ᠤᠲᠠᠰᠤ᠂ ᠬᠠᠶᠢᠭ ᠤᠨ ᠳ᠋ᠤᠭᠠᠷ ᠢ ᠢᠯᠡ ᠪᠣᠯᠭᠠᠬᠤ ᠦᠭᠡᠢ᠃"
        ),
    },
    "case_question": {
        "zh-Hans": "市民诉求",
        # irgen-U guyucilal
        "mn-Mong": "ᠢᠷᠭᠡᠨ ᠦ ᠭᠤᠶᠤᠴᠢᠯᠠᠯ",
    },
    "case_took": {
        "zh-Hans": "办理用时",
        # siidbUrilegsen qugucag|a
        "mn-Mong": "ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠭᠰᠡᠨ ᠬᠤᠭᠤᠴᠠᠭ᠎ᠠ",
    },
    "unit_days": {
        "zh-Hans": "天",
        # edUr
        "mn-Mong": "ᠡᠳᠦᠷ",
    },
    "unit_hours": {
        "zh-Hans": "小时",
        # cag
        "mn-Mong": "ᠴᠠᠭ",
    },
    "case_rating": {
        "zh-Hans": "市民评价",
        # irgen-U Unelelte
        "mn-Mong": "ᠢᠷᠭᠡᠨ ᠦ ᠦᠨᠡᠯᠡᠯᠲᠡ",
    },
    "not_rated": {
        "zh-Hans": "未评价",
        # Unelegedegui
        "mn-Mong": "ᠦᠨᠡᠯᠡᠭᠡᠳᠡᠭᠦᠢ",
    },
    "centre": {
        "zh-Hans": "12345 热线直接答复",
        # 12345 qalagun xugum xud qarigulugsan
        "mn-Mong": "12345 ᠬᠠᠯᠠᠭᠤᠨ ᠱᠤᠭᠤᠮ ᠱᠤᠳ ᠬᠠᠷᠢᠭᠤᠯᠤᠭᠰᠠᠨ",
    },
    "no_cases": {
        "zh-Hans": "暂无公开的案例。",
        # ile bolgagsan kereg qaraqan Ugei.
        "mn-Mong": "ᠢᠯᠡ ᠪᠣᠯᠭᠠᠭᠰᠠᠨ ᠬᠡᠷᠡᠭ ᠬᠠᠷᠠᠬᠠᠨ ᠦᠭᠡᠢ᠃",
    },
    "read_case": {
        "zh-Hans": "查看详情",
        # delgerenggUi-yi UjekU
        "mn-Mong": "ᠳᠡᠯᠭᠡᠷᠡᠩᠭᠦᠢ ᠶᠢ ᠦᠵᠡᠬᠦ",
    },
    "back_to_list": {
        "zh-Hans": "返回列表",
        # jagsagalta-du bucaqu
        "mn-Mong": "ᠵᠢᠭᠰᠠᠭᠠᠯᠲᠠ ᠳᠤ ᠪᠤᠴᠠᠬᠤ",
    },
    "page_prev": {
        "zh-Hans": "上一页",
        # emUneki
        "mn-Mong": "ᠡᠮᠦᠨᠡᠬᠢ",
    },
    "page_next": {
        "zh-Hans": "下一页",
        # daragaki
        "mn-Mong": "ᠳᠠᠷᠠᠭᠠᠬᠢ",
    },
    "feed": {
        "zh-Hans": "订阅更新（Atom）",
        # sinecilel-i jakiyalaqu
        "mn-Mong": "ᠰᠢᠨᠡᠴᠢᠯᠡᠯ ᠢ ᠵᠠᠬᠢᠶᠠᠯᠠᠬᠤ",
    },
    "monthly_title": {
        "zh-Hans": "各单位按时办结率和满意率",
        # bayigululg|a bUri-yin cag-tagan siidbUrilegsen qubi ba sedkil qaNgugsan qubi
        "mn-Mong": ("ᠪᠠᠶᠢᠭᠤᠯᠤᠯᠭ᠎ᠠ ᠪᠦᠷᠢ ᠶᠢᠨ ᠴᠠᠭ ᠲᠠᠭᠠᠨ ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠭᠰᠡᠨ ᠬᠤᠪᠢ ᠪᠠ ᠰᠡᠳᠬᠢᠯ ᠬᠠᠩᠭᠤᠭᠰᠠᠨ ᠬᠤᠪᠢ"),
    },
    "monthly_intro": {
        "zh-Hans": "按月公布；只列出当月办结反馈达到一定件数的单位。",
        # sar|a bUri ile bolgan|a.
        "mn-Mong": "ᠰᠠᠷ᠎ᠠ ᠪᠦᠷᠢ ᠢᠯᠡ ᠪᠣᠯᠭᠠᠨ᠎ᠠ᠃",
    },
    "month": {
        "zh-Hans": "月份",
        # sar|a
        "mn-Mong": "ᠰᠠᠷ᠎ᠠ",
    },
    "show": {
        "zh-Hans": "查看",
        # UjekU
        "mn-Mong": "ᠦᠵᠡᠬᠦ",
    },
    "col_department": {
        "zh-Hans": "单位",
        # bayigululg|a
        "mn-Mong": "ᠪᠠᠶᠢᠭᠤᠯᠤᠯᠭ᠎ᠠ",
    },
    "col_on_time": {
        "zh-Hans": "按时办结率",
        # cag-tagan siidbUrilegsen qubi
        "mn-Mong": "ᠴᠠᠭ ᠲᠠᠭᠠᠨ ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠭᠰᠡᠨ ᠬᠤᠪᠢ",
    },
    "col_satisfaction": {
        "zh-Hans": "满意率",
        # sedkil qaNgugsan qubi
        "mn-Mong": "ᠰᠡᠳᠬᠢᠯ ᠬᠠᠩᠭᠤᠭᠰᠠᠨ ᠬᠤᠪᠢ",
    },
    "col_replies": {
        "zh-Hans": "办结件数",
        # siidbUrilegsen too
        "mn-Mong": "ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠭᠰᠡᠨ ᠲᠣᠭ᠎ᠠ",
    },
    "col_ratings": {
        "zh-Hans": "评价件数",
        # Unelelte-yin too
        "mn-Mong": "ᠦᠨᠡᠯᠡᠯᠲᠡ ᠶᠢᠨ ᠲᠣᠭ᠎ᠠ",
    },
    "no_figures": {
        "zh-Hans": "该月没有可公布的数据。",
        # ene sar|a-du ile bolgaqu too Ugei.
        "mn-Mong": "ᠡᠨᠡ ᠰᠠᠷ᠎ᠠ ᠳᠤ ᠢᠯᠡ ᠪᠣᠯᠭᠠᠬᠤ ᠲᠣᠭ᠎ᠠ ᠦᠭᠡᠢ᠃",
    },
    "rate_resolved": {
        "zh-Hans": "问题是否已解决",
        # asagudal siidbUrilegdegsen UU
        "mn-Mong": "ᠠᠰᠠᠭᠤᠳᠠᠯ ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠭᠳᠡᠭᠰᠡᠨ ᠦᠦ",
    },
    "resolved_yes": {
        "zh-Hans": "已解决",
        # siidbUrilegdegsen
        "mn-Mong": "ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠭᠳᠡᠭᠰᠡᠨ",
    },
    "resolved_no": {
        "zh-Hans": "未解决",
        # siidbUrilegdege Ugei
        "mn-Mong": "ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠭᠳᠡᠭᠡ ᠦᠭᠡᠢ",
    },
}
