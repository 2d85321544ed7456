"""Citizen-page message catalog: Simplified Chinese and Mongolian in traditional script."""

from __future__ import annotations

from collections.abc import Callable

ZH = "zh-Hans"
MN = "mn-Mong"
LANGS = (ZH, MN)
DEFAULT_LANG = ZH
LANG_COOKIE = "hotline_lang"
# each language's name in its own script, for the switch links
LANG_NAMES = {ZH: "中文", MN: "ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ"}

# TRANSLATIONS NEED REVIEW BY A NATIVE SPEAKER. The Mongolian (traditional script, Unicode
# U+1800-U+18AF; U+202F before case suffixes, U+180E before a separated final vowel) was written
# by a non-native engineer. The comment above each entry is its romanisation (q/k = U+182C,
# g = U+182D, x = sh U+1831, c = ch, j = dzh, O = ö, U = ü, N = ng, D = d + FVS1, "-" = U+202F,
# "|" = U+180E) so a reviewer can see what was meant. Department and region names stay in
# Chinese: the directory has no Mongolian names yet.
CATALOG: dict[str, dict[str, str]] = {
    "site_name": {
        "zh-Hans": "12345 政务服务便民热线",
        # 12345 jasag-un kereg-Un Uilecilege-yin qalagun xugum
        "mn-Mong": "12345 ᠵᠠᠰᠠᠭ ᠤᠨ ᠬᠡᠷᠡᠭ ᠦᠨ ᠦᠢᠯᠡᠴᠢᠯᠡᠭᠡ ᠶᠢᠨ ᠬᠠᠯᠠᠭᠤᠨ ᠱᠤᠭᠤᠮ",
    },
    "skip_link": {
        "zh-Hans": "跳到主要内容",
        # gool agulg|a-du ociqu
        "mn-Mong": "ᠭᠣᠣᠯ ᠠᠭᠤᠯᠭ᠎ᠠ ᠳᠤ ᠣᠴᠢᠬᠤ",
    },
    "nav_submit": {
        "zh-Hans": "提交诉求",
        # guyucilal tusiyaqu
        "mn-Mong": "ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠲᠤᠰᠢᠶᠠᠬᠤ",
    },
    "nav_track": {
        "zh-Hans": "查询工单",
        # ajil-un qudasu-yi qayiqu
        "mn-Mong": "ᠠᠵᠢᠯ ᠤᠨ ᠬᠤᠳᠠᠰᠤ ᠶᠢ ᠬᠠᠶᠢᠬᠤ",
    },
    "nav_staff": {
        "zh-Hans": "工作人员登录",
        # ajiltan nebterekU
        "mn-Mong": "ᠠᠵᠢᠯᠲᠠᠨ ᠨᠡᠪᠲᠡᠷᠡᠬᠦ",
    },
    "submit_title": {
        "zh-Hans": "提交诉求",
        # guyucilal tusiyaqu
        "mn-Mong": "ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠲᠤᠰᠢᠶᠠᠬᠤ",
    },
    "submit_intro": {
        "zh-Hans": "请如实填写您的诉求，我们会及时受理，并转交承办单位办理。",
        # ta guyucilal-iyan Unen-iyer bicigerei. bide darui kUliyen abcu qarigucaqu
        # bayigululg|a-du siljigUlUn|e.
        "mn-Mong": (
            "ᠲᠠ ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠢᠶᠠᠨ ᠦᠨᠡᠨ ᠢᠶᠡᠷ ᠪᠢᠴᠢᠭᠡᠷᠡᠢ᠃ ᠪᠢᠳᠡ ᠳᠠᠷᠤᠢ ᠬᠦᠯᠢᠶᠡᠨ ᠠᠪᠴᠤ "
            "ᠬᠠᠷᠢᠭᠤᠴᠠᠬᠤ ᠪᠠᠶᠢᠭᠤᠯᠤᠯᠭ᠎ᠠ ᠳᠤ ᠰᠢᠯᠵᠢᠭᠦᠯᠦᠨ᠎ᠡ᠃"
        ),
    },
    "field_content": {
        "zh-Hans": "诉求内容",
        # guyucilal-un agulg|a
        "mn-Mong": "ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠤᠨ ᠠᠭᠤᠯᠭ᠎ᠠ",
    },
    "hint_content": {
        "zh-Hans": "请写明时间、地点和具体情况。",
        # cag, gajar ba todorqai bayidal-i bicigerei.
        "mn-Mong": "ᠴᠠᠭ᠂ ᠭᠠᠵᠠᠷ ᠪᠠ ᠲᠣᠳᠣᠷᠬᠠᠢ ᠪᠠᠶᠢᠳᠠᠯ ᠢ ᠪᠢᠴᠢᠭᠡᠷᠡᠢ᠃",
    },
    "field_phone": {
        "zh-Hans": "联系电话",
        # qolbog|a bariqu utasu
        "mn-Mong": "ᠬᠣᠯᠪᠣᠭ᠎ᠠ ᠪᠠᠷᠢᠬᠤ ᠤᠲᠠᠰᠤ",
    },
    "hint_phone": {
        "zh-Hans": "凭工单编号和此电话查询进度、评价答复；不会公开。",
        # ajil-un qudasu-yin Dugar ba ene utasu-bar siidbUrilekU yabuca-yi qayiju UnelejU
        # bolon|a. ile bolgaqu Ugei.
        "mn-Mong": (
            "ᠠᠵᠢᠯ ᠤᠨ ᠬᠤᠳᠠᠰᠤ ᠶᠢᠨ ᠳ᠋ᠤᠭᠠᠷ ᠪᠠ ᠡᠨᠡ ᠤᠲᠠᠰᠤ ᠪᠠᠷ ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠬᠦ ᠶᠠᠪᠤᠴᠠ ᠶᠢ "
            "ᠬᠠᠶᠢᠵᠤ ᠦᠨᠡᠯᠡᠵᠦ ᠪᠣᠯᠣᠨ᠎ᠠ᠃ ᠢᠯᠡ ᠪᠣᠯᠭᠠᠬᠤ ᠦᠭᠡᠢ᠃"
        ),
    },
    "field_name": {
        "zh-Hans": "姓名",
        # obog ner|e
        "mn-Mong": "ᠣᠪᠣᠭ ᠨᠡᠷ᠎ᠡ",
    },
    "field_address": {
        "zh-Hans": "地址",
        # qayig
        "mn-Mong": "ᠬᠠᠶᠢᠭ",
    },
    "field_region": {
        "zh-Hans": "所在地区",
        # oron nutug
        "mn-Mong": "ᠣᠷᠣᠨ ᠨᠤᠲᠤᠭ",
    },
    "choose_optional": {
        "zh-Hans": "请选择（可不选）",
        # soNgogarai (soNgoqu Ugei cU bolon|a)
        "mn-Mong": "ᠰᠣᠩᠭᠣᠭᠠᠷᠠᠢ (ᠰᠣᠩᠭᠣᠬᠤ ᠦᠭᠡᠢ ᠴᠦ ᠪᠣᠯᠣᠨ᠎ᠠ)",
    },
    "field_kind": {
        "zh-Hans": "诉求类型",
        # guyucilal-un tOrOl
        "mn-Mong": "ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠤᠨ ᠲᠥᠷᠥᠯ",
    },
    "kind_consult": {
        "zh-Hans": "咨询",
        # lablan asaguqu
        "mn-Mong": "ᠯᠠᠪᠯᠠᠨ ᠠᠰᠠᠭᠤᠬᠤ",
    },
    "kind_help": {
        "zh-Hans": "求助",
        # tusalamji guyuqu
        "mn-Mong": "ᠲᠤᠰᠠᠯᠠᠮᠵᠢ ᠭᠤᠶᠤᠬᠤ",
    },
    "kind_complaint": {
        "zh-Hans": "投诉",
        # gomdal
        "mn-Mong": "ᠭᠣᠮᠳᠠᠯ",
    },
    "kind_report": {
        "zh-Hans": "举报",
        # medegUlUlte
        "mn-Mong": "ᠮᠡᠳᠡᠭᠦᠯᠦᠯᠲᠡ",
    },
    "kind_suggestion": {
        "zh-Hans": "建议",
        # sanal
        "mn-Mong": "ᠰᠠᠨᠠᠯ",
    },
    "kind_praise": {
        "zh-Hans": "表扬",
        # magtagal
        "mn-Mong": "ᠮᠠᠭᠲᠠᠭᠠᠯ",
    },
    "kind_other": {
        "zh-Hans": "其他",
        # busud
        "mn-Mong": "ᠪᠤᠰᠤᠳ",
    },
    "field_confidential": {
        "zh-Hans": "对承办单位保密我的姓名和电话",
        # minu ner|e ba utasu-yi qarigucaqu bayigululg|a-aca niguca qadagalaqu
        "mn-Mong": "ᠮᠢᠨᠤ ᠨᠡᠷ᠎ᠡ ᠪᠠ ᠤᠲᠠᠰᠤ ᠶᠢ ᠬᠠᠷᠢᠭᠤᠴᠠᠬᠤ ᠪᠠᠶᠢᠭᠤᠯᠤᠯᠭ᠎ᠠ ᠠᠴᠠ ᠨᠢᠭᠤᠴᠠ ᠬᠠᠳᠠᠭᠠᠯᠠᠬᠤ",
    },
    "required": {
        "zh-Hans": "必填",
        # erkebsi
        "mn-Mong": "ᠡᠷᠬᠡᠪᠰᠢ",
    },
    "optional": {
        "zh-Hans": "选填",
        # bicikU Ugei cU bolon|a
        "mn-Mong": "ᠪᠢᠴᠢᠬᠦ ᠦᠭᠡᠢ ᠴᠦ ᠪᠣᠯᠣᠨ᠎ᠠ",
    },
    "button_submit": {
        "zh-Hans": "提交",
        # tusiyaqu
        "mn-Mong": "ᠲᠤᠰᠢᠶᠠᠬᠤ",
    },
    "submitted_title": {
        "zh-Hans": "诉求已受理",
        # tan-u guyucilal-i kUliyen abula
        "mn-Mong": "ᠲᠠᠨ ᠤ ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠢ ᠬᠦᠯᠢᠶᠡᠨ ᠠᠪᠤᠯᠠ",
    },
    "number_label": {
        "zh-Hans": "工单编号",
        # ajil-un qudasu-yin Dugar
        "mn-Mong": "ᠠᠵᠢᠯ ᠤᠨ ᠬᠤᠳᠠᠰᠤ ᠶᠢᠨ ᠳ᠋ᠤᠭᠠᠷ",
    },
    "submitted_hint": {
        "zh-Hans": "请记下工单编号。凭编号和联系电话可以查询办理进度，办结后请评价答复。",
        # ajil-un qudasu-yin Dugar-iyan temdeglejU abugarai. Dugar ba utasu-bar siidbUrilekU
        # yabuca-yi qayiju UnelejU bolon|a.
        "mn-Mong": (
            "ᠠᠵᠢᠯ ᠤᠨ ᠬᠤᠳᠠᠰᠤ ᠶᠢᠨ ᠳ᠋ᠤᠭᠠᠷ ᠢᠶᠠᠨ ᠲᠡᠮᠳᠡᠭᠯᠡᠵᠦ ᠠᠪᠤᠭᠠᠷᠠᠢ᠃ ᠳ᠋ᠤᠭᠠᠷ ᠪᠠ "
            "ᠤᠲᠠᠰᠤ ᠪᠠᠷ ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠬᠦ ᠶᠠᠪᠤᠴᠠ ᠶᠢ ᠬᠠᠶᠢᠵᠤ ᠦᠨᠡᠯᠡᠵᠦ ᠪᠣᠯᠣᠨ᠎ᠠ᠃"
        ),
    },
    "submitted_no_phone": {
        "zh-Hans": "您没有留联系电话，无法在网上查询进度；如需查询请拨打 12345。",
        # ta utasu-ban Uledegegsen Ugei tula 12345 utasu-bar asaguju bolon|a.
        "mn-Mong": "ᠲᠠ ᠤᠲᠠᠰᠤ ᠪᠠᠨ ᠦᠯᠡᠳᠡᠭᠡᠭᠰᠡᠨ ᠦᠭᠡᠢ ᠲᠤᠯᠠ 12345 ᠤᠲᠠᠰᠤ ᠪᠠᠷ ᠠᠰᠠᠭᠤᠵᠤ ᠪᠣᠯᠣᠨ᠎ᠠ᠃",
    },
    "go_track": {
        "zh-Hans": "查询办理进度",
        # siidbUrilekU yabuca-yi qayiqu
        "mn-Mong": "ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠬᠦ ᠶᠠᠪᠤᠴᠠ ᠶᠢ ᠬᠠᠶᠢᠬᠤ",
    },
    "track_title": {
        "zh-Hans": "查询工单",
        # ajil-un qudasu-yi qayiqu
        "mn-Mong": "ᠠᠵᠢᠯ ᠤᠨ ᠬᠤᠳᠠᠰᠤ ᠶᠢ ᠬᠠᠶᠢᠬᠤ",
    },
    "track_intro": {
        "zh-Hans": "请输入工单编号和提交诉求时留的联系电话。",
        # ajil-un qudasu-yin Dugar ba utasu-ban orogulugarai.
        "mn-Mong": "ᠠᠵᠢᠯ ᠤᠨ ᠬᠤᠳᠠᠰᠤ ᠶᠢᠨ ᠳ᠋ᠤᠭᠠᠷ ᠪᠠ ᠤᠲᠠᠰᠤ ᠪᠠᠨ ᠣᠷᠣᠭᠤᠯᠤᠭᠠᠷᠠᠢ᠃",
    },
    "button_track": {
        "zh-Hans": "查询",
        # qayiqu
        "mn-Mong": "ᠬᠠᠶᠢᠬᠤ",
    },
    "status_title": {
        "zh-Hans": "办理情况",
        # siidbUrilekU bayidal
        "mn-Mong": "ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠬᠦ ᠪᠠᠶᠢᠳᠠᠯ",
    },
    "label_status": {
        "zh-Hans": "办理状态",
        # ajil-un qudasu-yin bayidal
        "mn-Mong": "ᠠᠵᠢᠯ ᠤᠨ ᠬᠤᠳᠠᠰᠤ ᠶᠢᠨ ᠪᠠᠶᠢᠳᠠᠯ",
    },
    "label_created": {
        "zh-Hans": "受理时间",
        # kUliyen abugsan cag
        "mn-Mong": "ᠬᠦᠯᠢᠶᠡᠨ ᠠᠪᠤᠭᠰᠠᠨ ᠴᠠᠭ",
    },
    "label_department": {
        "zh-Hans": "承办单位",
        # qarigucaqu bayigululg|a
        "mn-Mong": "ᠬᠠᠷᠢᠭᠤᠴᠠᠬᠤ ᠪᠠᠶᠢᠭᠤᠯᠤᠯᠭ᠎ᠠ",
    },
    "department_pending": {
        "zh-Hans": "尚未派单",
        # qaraqan tusiyagadui
        "mn-Mong": "ᠬᠠᠷᠠᠬᠠᠨ ᠲᠤᠰᠢᠶᠠᠭᠠᠳᠤᠢ",
    },
    "label_answer": {
        "zh-Hans": "答复",
        # qarigu
        "mn-Mong": "ᠬᠠᠷᠢᠭᠤ",
    },
    "label_answered_at": {
        "zh-Hans": "答复时间",
        # qarigulugsan cag
        "mn-Mong": "ᠬᠠᠷᠢᠭᠤᠯᠤᠭᠰᠠᠨ ᠴᠠᠭ",
    },
    "answer_pending": {
        "zh-Hans": "办理完成并审核后，答复会显示在这里。",
        # siidbUrilejU dagusugad kinan batulagsan-u darag|a qarigu ende garun|a.
        "mn-Mong": "ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠵᠦ ᠳᠠᠭᠤᠰᠤᠭᠠᠳ ᠬᠢᠨᠠᠨ ᠪᠠᠲᠤᠯᠠᠭᠰᠠᠨ ᠤ ᠳᠠᠷᠠᠭ᠎ᠠ ᠬᠠᠷᠢᠭᠤ ᠡᠨᠳᠡ ᠭᠠᠷᠤᠨ᠎ᠠ᠃",
    },
    "merged_title": {
        "zh-Hans": "主工单办理情况",
        # gool ajil-un qudasu-yin siidbUrilekU bayidal
        "mn-Mong": "ᠭᠣᠣᠯ ᠠᠵᠢᠯ ᠤᠨ ᠬᠤᠳᠠᠰᠤ ᠶᠢᠨ ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠬᠦ ᠪᠠᠶᠢᠳᠠᠯ",
    },
    "merged_intro": {
        "zh-Hans": (
            "其他市民反映过同一问题，您的诉求已并入主工单一并办理；办理进度和答复以主工单为准。"
        ),
        # tan-u guyucilal-i gool ajil-un qudasu-du nigedgejU qamtu siidbUrilen|e. siidbUrilekU
        # yabuca ba qarigu gool ajil-un qudasu-yi dagan|a.
        "mn-Mong": (
            "ᠲᠠᠨ ᠤ ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠢ ᠭᠣᠣᠯ ᠠᠵᠢᠯ ᠤᠨ ᠬᠤᠳᠠᠰᠤ ᠳᠤ ᠨᠢᠭᠡᠳᠭᠡᠵᠦ ᠬᠠᠮᠲᠤ "
            "ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠨ᠎ᠡ᠃ ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠬᠦ ᠶᠠᠪᠤᠴᠠ ᠪᠠ ᠬᠠᠷᠢᠭᠤ ᠭᠣᠣᠯ ᠠᠵᠢᠯ ᠤᠨ ᠬᠤᠳᠠᠰᠤ ᠶᠢ "
            "ᠳᠠᠭᠠᠨ᠎ᠠ᠃"
        ),
    },
    "main_number_label": {
        "zh-Hans": "主工单编号",
        # gool ajil-un qudasu-yin Dugar
        "mn-Mong": "ᠭᠣᠣᠯ ᠠᠵᠢᠯ ᠤᠨ ᠬᠤᠳᠠᠰᠤ ᠶᠢᠨ ᠳ᠋ᠤᠭᠠᠷ",
    },
    "merged_rating": {
        "zh-Hans": "答复由主工单的诉求人评价。如对答复有意见，请拨打 12345 或重新提交诉求。",
        # qarigu-yi gool ajil-un qudasu-yin guyucilal-i tusiyagsan kUmUn Unelen|e. sanal
        # bayibal 12345 utasu-bar qolbogdagarai esebesU dakin guyucilal tusiyagarai.
        "mn-Mong": (
            "ᠬᠠᠷᠢᠭᠤ ᠶᠢ ᠭᠣᠣᠯ ᠠᠵᠢᠯ ᠤᠨ ᠬᠤᠳᠠᠰᠤ ᠶᠢᠨ ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠢ ᠲᠤᠰᠢᠶᠠᠭᠰᠠᠨ ᠬᠦᠮᠦᠨ "
            "ᠦᠨᠡᠯᠡᠨ᠎ᠡ᠃ ᠰᠠᠨᠠᠯ ᠪᠠᠶᠢᠪᠠᠯ 12345 ᠤᠲᠠᠰᠤ ᠪᠠᠷ ᠬᠣᠯᠪᠣᠭᠳᠠᠭᠠᠷᠠᠢ ᠡᠰᠡᠪᠡᠰᠦ "
            "ᠳᠠᠬᠢᠨ ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠲᠤᠰᠢᠶᠠᠭᠠᠷᠠᠢ᠃"
        ),
    },
    "label_satisfaction": {
        "zh-Hans": "您的评价",
        # tan-u Unelelte
        "mn-Mong": "ᠲᠠᠨ ᠤ ᠦᠨᠡᠯᠡᠯᠲᠡ",
    },
    "rate_title": {
        "zh-Hans": "请评价答复",
        # qarigu-yi Unelegerei
        "mn-Mong": "ᠬᠠᠷᠢᠭᠤ ᠶᠢ ᠦᠨᠡᠯᠡᠭᠡᠷᠡᠢ",
    },
    "sat_satisfied": {
        "zh-Hans": "满意",
        # sedkil qaNgugsan
        "mn-Mong": "ᠰᠡᠳᠬᠢᠯ ᠬᠠᠩᠭᠤᠭᠰᠠᠨ",
    },
    "sat_basic": {
        "zh-Hans": "基本满意",
        # UndUsUn-degen sedkil qaNgugsan
        "mn-Mong": "ᠦᠨᠳᠦᠰᠦᠨ ᠳᠡᠭᠡᠨ ᠰᠡᠳᠬᠢᠯ ᠬᠠᠩᠭᠤᠭᠰᠠᠨ",
    },
    "sat_unsatisfied": {
        "zh-Hans": "不满意",
        # sedkil qaNgugsan Ugei
        "mn-Mong": "ᠰᠡᠳᠬᠢᠯ ᠬᠠᠩᠭᠤᠭᠰᠠᠨ ᠦᠭᠡᠢ",
    },
    "rate_note": {
        "zh-Hans": "意见",
        # sanal
        "mn-Mong": "ᠰᠠᠨᠠᠯ",
    },
    "button_rate": {
        "zh-Hans": "提交评价",
        # Unelelte tusiyaqu
        "mn-Mong": "ᠦᠨᠡᠯᠡᠯᠲᠡ ᠲᠤᠰᠢᠶᠠᠬᠤ",
    },
    "rated_thanks": {
        "zh-Hans": "感谢您的评价！",
        # Unelelte OggUgsen-dU tan-du bayarlal|a.
        "mn-Mong": "ᠦᠨᠡᠯᠡᠯᠲᠡ ᠥᠭᠭᠦᠭᠰᠡᠨ ᠳᠦ ᠲᠠᠨ ᠳᠤ ᠪᠠᠶᠠᠷᠯᠠᠯ᠎ᠠ᠃",
    },
    "error_title": {
        "zh-Hans": "出错了",
        # aldag|a garba
        "mn-Mong": "ᠠᠯᠳᠠᠭ᠎ᠠ ᠭᠠᠷᠪᠠ",
    },
    "err_content": {
        "zh-Hans": "请填写诉求内容。",
        # guyucilal-un agulg|a-ban bicigerei.
        "mn-Mong": "ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠤᠨ ᠠᠭᠤᠯᠭ᠎ᠠ ᠪᠠᠨ ᠪᠢᠴᠢᠭᠡᠷᠡᠢ᠃",
    },
    "err_too_long": {
        "zh-Hans": "填写的内容太长。",
        # bicigsen agulg|a ketUrkei urtu bayin|a.
        "mn-Mong": "ᠪᠢᠴᠢᠭᠰᠡᠨ ᠠᠭᠤᠯᠭ᠎ᠠ ᠬᠡᠲᠦᠷᠬᠡᠢ ᠤᠷᠲᠤ ᠪᠠᠶᠢᠨ᠎ᠠ᠃",
    },
    "err_phone": {
        "zh-Hans": "电话号码格式不正确（手机号11位，固话需带区号）。",
        # utasun-u Dugar burugu bayin|a.
        "mn-Mong": "ᠤᠲᠠᠰᠤᠨ ᠤ ᠳ᠋ᠤᠭᠠᠷ ᠪᠤᠷᠤᠭᠤ ᠪᠠᠶᠢᠨ᠎ᠠ᠃",
    },
    "err_confidential_phone": {
        "zh-Hans": "保密诉求须留联系电话，以便回复。",
        # niguca guyucilal-du utasu-ban UledegekU keregtei.
        "mn-Mong": "ᠨᠢᠭᠤᠴᠠ ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠳᠤ ᠤᠲᠠᠰᠤ ᠪᠠᠨ ᠦᠯᠡᠳᠡᠭᠡᠬᠦ ᠬᠡᠷᠡᠭᠲᠡᠢ᠃",
    },
    "err_region": {
        "zh-Hans": "请选择正确的地区。",
        # jOb oron nutug-i soNgogarai.
        "mn-Mong": "ᠵᠥᠪ ᠣᠷᠣᠨ ᠨᠤᠲᠤᠭ ᠢ ᠰᠣᠩᠭᠣᠭᠠᠷᠠᠢ᠃",
    },
    "err_kind": {
        "zh-Hans": "请选择正确的诉求类型。",
        # jOb guyucilal-un tOrOl-i soNgogarai.
        "mn-Mong": "ᠵᠥᠪ ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠤᠨ ᠲᠥᠷᠥᠯ ᠢ ᠰᠣᠩᠭᠣᠭᠠᠷᠠᠢ᠃",
    },
    "err_not_found": {
        "zh-Hans": "未找到与该编号和电话匹配的工单。",
        # toqiraqu ajil-un qudasu oldagsan Ugei.
        "mn-Mong": "ᠲᠣᠬᠢᠷᠠᠬᠤ ᠠᠵᠢᠯ ᠤᠨ ᠬᠤᠳᠠᠰᠤ ᠣᠯᠳᠠᠭᠰᠠᠨ ᠦᠭᠡᠢ᠃",
    },
    "err_cannot_rate": {
        "zh-Hans": "该工单目前不能评价。",
        # ene ajil-un qudasu-yi odo UnelejU bolqu Ugei.
        "mn-Mong": "ᠡᠨᠡ ᠠᠵᠢᠯ ᠤᠨ ᠬᠤᠳᠠᠰᠤ ᠶᠢ ᠣᠳᠣ ᠦᠨᠡᠯᠡᠵᠦ ᠪᠣᠯᠬᠤ ᠦᠭᠡᠢ᠃",
    },
    "err_rating": {
        "zh-Hans": "请选择满意程度。",
        # Unelelte-ben soNgogarai.
        "mn-Mong": "ᠦᠨᠡᠯᠡᠯᠲᠡ ᠪᠡᠨ ᠰᠣᠩᠭᠣᠭᠠᠷᠠᠢ᠃",
    },
    "field_files": {
        "zh-Hans": "照片或材料",
        # jiruG buyu materiyal
        "mn-Mong": "ᠵᠢᠷᠤᠭ ᠪᠤᠶᠤ ᠮᠠᠲ᠋ᠧᠷᠢᠶᠠᠯ",
    },
    "files_hint": {
        "zh-Hans": "最多 3 个 JPEG、PNG 或 PDF 文件，每个不超过 10 MB。",
        # jiruG material 3 kUrtele, nige bUri 10 (megabait)-aca ilegU Ugei.
        "mn-Mong": "ᠵᠢᠷᠤᠭ ᠮᠠᠲ᠋ᠧᠷᠢᠶᠠᠯ 3 ᠬᠦᠷᠲᠡᠯ᠂ ᠨᠢᠭᠡ ᠪᠦᠷᠢ 10 ᠮᠧᠭᠠᠪᠠᠢᠲ ᠠᠴᠠ ᠢᠯᠡᠭᠦ ᠦᠭᠡᠢ᠃",
    },
    "err_too_many": {
        "zh-Hans": "尝试次数过多，请稍后再试；急事请拨打 12345。",
        # hetU olan udag-a oroldagsan, qoyin-a dakin oroldogarai; yaraltai bol 12345 utasdagarai.
        "mn-Mong": (
            "ᠬᠡᠲᠦ ᠣᠯᠠᠨ ᠤᠳᠠᠭ᠎ᠠ ᠣᠷᠣᠯᠳᠠᠭᠰᠠᠨ᠂ ᠬᠣᠶᠢᠨ᠎ᠠ ᠳᠠᠬᠢᠨ ᠣᠷᠣᠯᠳᠣᠭᠠᠷᠠᠢ᠃ ᠶᠠᠷᠠᠯᠲᠠᠢ ᠪᠣᠯ 12345 ᠤᠲᠠᠰᠳᠠᠭᠠᠷᠠᠢ᠃"
        ),
    },
    "err_generic": {
        "zh-Hans": "提交未成功，请检查填写的内容后重试。",
        # tusiyaju cidagsan Ugei, bicigsen-iyen silgaju dakin oroldogarai.
        "mn-Mong": "ᠲᠤᠰᠢᠶᠠᠵᠤ ᠴᠢᠳᠠᠭᠰᠠᠨ ᠦᠭᠡᠢ᠂ ᠪᠢᠴᠢᠭᠰᠡᠨ ᠢᠶᠡᠨ ᠰᠢᠯᠭᠠᠵᠤ ᠳᠠᠬᠢᠨ ᠣᠷᠣᠯᠳᠣᠭᠠᠷᠠᠢ᠃",
    },
    "footer": {
        "zh-Hans": "12345 政务服务便民热线 · 全天24小时受理",
        # 12345 qalagun xugum · edUr sOni 24 cag kUliyen abun|a
        "mn-Mong": "12345 ᠬᠠᠯᠠᠭᠤᠨ ᠱᠤᠭᠤᠮ · ᠡᠳᠦᠷ ᠰᠥᠨᠢ 24 ᠴᠠᠭ ᠬᠦᠯᠢᠶᠡᠨ ᠠᠪᠤᠨ᠎ᠠ",
    },
    "status_new": {
        "zh-Hans": "已受理",
        # kUliyen abugsan
        "mn-Mong": "ᠬᠦᠯᠢᠶᠡᠨ ᠠᠪᠤᠭᠰᠠᠨ",
    },
    "status_answered": {
        "zh-Hans": "已直接答复",
        # xud qarigulugsan
        "mn-Mong": "ᠱᠤᠳ ᠬᠠᠷᠢᠭᠤᠯᠤᠭᠰᠠᠨ",
    },
    "status_dispatched": {
        "zh-Hans": "已派单",
        # tusiyagsan
        "mn-Mong": "ᠲᠤᠰᠢᠶᠠᠭᠰᠠᠨ",
    },
    "status_accepted": {
        "zh-Hans": "办理中",
        # siidbUrilejU bayin|a
        "mn-Mong": "ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠵᠦ ᠪᠠᠶᠢᠨ᠎ᠠ",
    },
    "status_returned": {
        "zh-Hans": "已退单",
        # bucagagsan
        "mn-Mong": "ᠪᠤᠴᠠᠭᠠᠭᠰᠠᠨ",
    },
    "status_replied": {
        "zh-Hans": "已反馈待审核",
        # qarigulugsan, kinan batulaqu-yi kUliyejU bayin|a
        "mn-Mong": "ᠬᠠᠷᠢᠭᠤᠯᠤᠭᠰᠠᠨ᠂ ᠬᠢᠨᠠᠨ ᠪᠠᠲᠤᠯᠠᠬᠤ ᠶᠢ ᠬᠦᠯᠢᠶᠡᠵᠦ ᠪᠠᠶᠢᠨ᠎ᠠ",
    },
    "status_rework": {
        "zh-Hans": "重办中",
        # dakin siidbUrilejU bayin|a
        "mn-Mong": "ᠳᠠᠬᠢᠨ ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠵᠦ ᠪᠠᠶᠢᠨ᠎ᠠ",
    },
    "status_reviewed": {
        "zh-Hans": "已审核待回访",
        # kinan batulagsan
        "mn-Mong": "ᠬᠢᠨᠠᠨ ᠪᠠᠲᠤᠯᠠᠭᠰᠠᠨ",
    },
    "status_revisited": {
        "zh-Hans": "已回访",
        # dakin asagugsan
        "mn-Mong": "ᠳᠠᠬᠢᠨ ᠠᠰᠠᠭᠤᠭᠰᠠᠨ",
    },
    "status_reopened": {
        "zh-Hans": "已重启",
        # dakin negegegsen
        "mn-Mong": "ᠳᠠᠬᠢᠨ ᠨᠡᠭᠡᠭᠡᠭᠰᠡᠨ",
    },
    "status_closed": {
        "zh-Hans": "已办结",
        # siidbUrilejU dagusugsan
        "mn-Mong": "ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠵᠦ ᠳᠠᠭᠤᠰᠤᠭᠰᠠᠨ",
    },
    "status_merged": {
        "zh-Hans": "已合并",
        # nigedgegsen
        "mn-Mong": "ᠨᠢᠭᠡᠳᠭᠡᠭᠰᠡᠨ",
    },
}


def normalize_lang(value: str | None) -> str | None:
    """A supported language tag for `value` (case-insensitive), or None."""
    if not value:
        return None
    for lang in LANGS:
        if value.strip().lower() == lang.lower():
            return lang
    return None


def text(key: str, lang: str) -> str:
    """The message `key` in `lang`, falling back to Chinese; unknown keys are a bug (KeyError)."""
    entry = CATALOG[key]
    return entry.get(lang) or entry[DEFAULT_LANG]


def translator(lang: str) -> Callable[[str], str]:
    """`t(key)` bound to one language, for the templates."""

    def t(key: str) -> str:
        return text(key, lang)

    return t


def _join_public_catalog() -> None:
    """The public column's messages live in their own module (agent_ui/i18n_public.py)."""
    from agent_ui.i18n_public import PUBLIC_CATALOG

    overlap = set(PUBLIC_CATALOG) & set(CATALOG)
    if overlap:
        raise KeyError(f"message keys defined twice: {sorted(overlap)}")
    CATALOG.update(PUBLIC_CATALOG)


_join_public_catalog()
