"""Wording of the referral follow-through codes (``dxa.*``, ``follow_up.*``): why a DXA
result or a referral outcome was not recorded, and what to do next, in English and
Simplified Chinese. A refused entry changes nothing."""

from __future__ import annotations

FOLLOW_UP_CATALOGUE: dict[str, tuple[str, str]] = {
    "dxa.body_invalid": (
        "The DXA result must be a JSON object of named fields. Nothing was recorded.",
        "DXA结果必须是由命名字段组成的JSON对象。未记录任何内容。",
    ),
    "dxa.unknown_field": (
        "The DXA result has a field this box does not know. Check its spelling. Nothing was "
        "recorded.",
        "DXA结果中有本设备不认识的字段。请检查拼写。未记录任何内容。",
    ),
    "dxa.date_missing": (
        "Enter the date of the DXA scan. Nothing was recorded.",
        "请填写DXA检查日期。未记录任何内容。",
    ),
    "dxa.date_invalid": (
        "The DXA scan date is not a date (write it as YYYY-MM-DD). Nothing was recorded.",
        "DXA检查日期格式不正确（请写成 YYYY-MM-DD）。未记录任何内容。",
    ),
    "dxa.date_in_future": (
        "The DXA scan date is in the future. Check the date on the report. Nothing was recorded.",
        "DXA检查日期晚于今天。请核对报告上的日期。未记录任何内容。",
    ),
    "dxa.centre_missing": (
        "Enter the centre that did the DXA scan. Nothing was recorded.",
        "请填写进行DXA检查的医院或中心。未记录任何内容。",
    ),
    "dxa.text_invalid": (
        "The centre or device name is too long or holds line breaks or control characters. "
        "Nothing was recorded.",
        "医院/中心或设备名称过长，或含有换行等控制字符。未记录任何内容。",
    ),
    "dxa.no_t_score": (
        "Enter at least one T-score (femoral neck, total hip or lumbar spine L1-L4). Nothing "
        "was recorded.",
        "请至少填写一个T值（股骨颈、全髋或腰椎L1-L4）。未记录任何内容。",
    ),
    "dxa.score_not_a_number": (
        "A T-score or Z-score is not a number. Nothing was recorded.",
        "T值或Z值不是数字。未记录任何内容。",
    ),
    "dxa.score_out_of_range": (
        "A T-score or Z-score is outside the range a DXA report gives. Check it against the "
        "report. Nothing was recorded.",
        "T值或Z值超出DXA报告的可能范围。请对照报告核对。未记录任何内容。",
    ),
    "dxa.consent_invalid": (
        "The research consent answer must be yes, no or not asked. Nothing was recorded.",
        "科研使用同意的回答只能是“同意”、“不同意”或“未询问”。未记录任何内容。",
    ),
    "dxa.case_not_found": (
        "There is no case with this number. Nothing was recorded.",
        "没有该编号的病例。未记录任何内容。",
    ),
    "dxa.duplicate": (
        "This case already has a DXA result. A second result is not recorded; the first "
        "stays as it is.",
        "该病例已有DXA结果。不会记录第二个结果，原结果保持不变。",
    ),
    "follow_up.outcome_invalid": (
        "Choose what became of the referral: declined, or could not travel. Nothing was recorded.",
        "请选择转诊的去向：患者拒绝，或无法前往。未记录任何内容。",
    ),
    "follow_up.has_dxa": (
        "This case already has a DXA result, so it cannot be marked as declined or not travelled.",
        "该病例已有DXA结果，不能再标记为拒绝或无法前往。",
    ),
    "follow_up.export_invalid_date": (
        "The --since date is not a date (write it as YYYY-MM-DD).",
        "--since 日期格式不正确（请写成 YYYY-MM-DD）。",
    ),
    "follow_up.export_not_empty": (
        "The export folder is not empty. Choose a new or empty folder, so no earlier export "
        "is mixed in.",
        "导出文件夹不是空的。请选择新的或空的文件夹，以免混入以前的导出。",
    ),
    "hub.dxa_not_a_result": (
        "This is not a DXA result the hub can read: send a FHIR Observation with code "
        "dxa-result, the patient's pseudonymous key and the case record. Nothing was stored.",
        "这不是集中平台能读取的DXA结果：请发送代码为 dxa-result、带患者假名编码和病例记录号的 FHIR "
        "Observation。未保存任何内容。",
    ),
    "hub.dxa_unknown_case": (
        "The hub holds no case record with this site, pseudonymous patient key and case record "
        "number. Check them against the referral. Nothing was stored.",
        "集中平台没有与该机构、患者假名编码和病例记录号相符的病例。请与转诊单核对。未保存任何内容。",
    ),
    "hub.dxa_duplicate": (
        "This case already has a DXA result (given to the hub, or recorded at the clinic). A "
        "second result is not stored; the first stays as it is.",
        "该病例已有DXA结果（已交给集中平台，或已在诊所记录）。不会保存第二个结果，原结果保持不变。",
    ),
    "sync.dxa_unknown_case": (
        "The hub sent a DXA result for a case this box does not hold, or whose patient key does "
        "not match. It was not recorded and the hub was told.",
        "集中平台发来的DXA结果对应的病例不在本设备上，或患者假名编码不符。未记录，已告知集中平台。",
    ),
    "sync.dxa_not_a_result": (
        "The hub sent something that is not a DXA result this box can read. It was not "
        "recorded and the hub was told.",
        "集中平台发来的内容不是本设备能读取的DXA结果。未记录，已告知集中平台。",
    ),
}
