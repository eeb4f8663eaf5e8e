"""Wording of the site calibration codes: the site's calibrated threshold as a reason in a
referral (``site.*``), and why the admin page did not set a threshold (``calibration.*``),
in English and Simplified Chinese. A refused calibration changes nothing."""

from __future__ import annotations

CALIBRATION_CATALOGUE: dict[str, tuple[str, str]] = {
    "site.threshold_met": (
        "At or beyond the threshold this site calibrated on its own DXA results: refer for DXA.",
        "达到本机构根据自身DXA结果校准的阈值：建议转诊做DXA检查。",
    ),
    "site.threshold_not_met": (
        "Short of the threshold this site calibrated on its own DXA results. A low result "
        "cannot rule out osteoporosis.",
        "未达到本机构根据自身DXA结果校准的阈值。结果偏低不能排除骨质疏松。",
    ),
    "calibration.too_few_cases": (
        "Too few cases with a DXA result to set a threshold on: with so few, the 95 % "
        "interval of a referral rate or a sensitivity is too wide to choose from (at 50 cases "
        "a rate of one half still spans 0.37 to 0.63). Record more DXA results and calibrate "
        "later. The policy was not changed.",
        "有DXA结果的病例太少，不能据此设定阈值：病例这么少时，转诊率或敏感度的95%置信区间"
        "太宽，无法据此选择（即使有50例，50%的比例其区间仍为0.37至0.63）。请记录更多DXA结果后"
        "再校准。转诊策略未改变。",
    ),
    "calibration.too_few_in_a_class": (
        "Too few cases with (or without) the condition among those with a DXA result: a "
        "sensitivity or specificity on fewer than 10 has a 95 % interval wider than 0.35 (9 of "
        "10 spans 0.60 to 0.98). Record more DXA results and calibrate later. The policy was "
        "not changed.",
        "有DXA结果的病例中，达到（或未达到）该诊断标准的病例太少：少于10例时，敏感度或"
        "特异度的95%置信区间宽于0.35（10例中9例，区间为0.60至0.98）。请记录更多DXA结果后"
        "再校准。转诊策略未改变。",
    ),
    "calibration.rule_unknown": (
        "Choose one of the listed rules and DXA references. The policy was not changed.",
        "请从列出的规则和DXA标准中选择。转诊策略未改变。",
    ),
    "calibration.rule_not_used": (
        "This clinical model is shown for information only (it did not rank patients better "
        "than age alone and OSTA), so a threshold on it would not change any referral. Choose "
        "another rule. The policy was not changed.",
        "该临床模型仅供参考（其区分能力未优于单独年龄和OSTA），对其设定阈值不会改变任何"
        "转诊。请选择其他规则。转诊策略未改变。",
    ),
    "calibration.target_invalid": (
        "The target sensitivity must be a number above 0 and at most 100 %. The policy was "
        "not changed.",
        "目标敏感度必须是大于0且不超过100%的数字。转诊策略未改变。",
    ),
    "calibration.capacity_invalid": (
        "The DXA capacity must be a number of scans per month above 0. The policy was not changed.",
        "DXA检查能力必须是大于0的每月检查人数。转诊策略未改变。",
    ),
    "calibration.no_volume": (
        "This box has screened for less than four weeks, so its monthly screening volume, "
        "which the DXA capacity is divided by, is not known yet. Choose by target sensitivity "
        "instead. The policy was not changed.",
        "本设备开始筛查还不到四周，尚不知道每月筛查量，因此不能按DXA检查能力计算。"
        "请改用目标敏感度。转诊策略未改变。",
    ),
    "calibration.capacity_too_small": (
        "Even the strictest threshold of this rule would refer more patients a month than the "
        "DXA capacity allows. Choose by target sensitivity, or another rule. The policy was "
        "not changed.",
        "即使采用该规则最严格的阈值，每月转诊人数仍超过DXA检查能力。请改用目标敏感度或其他"
        "规则。转诊策略未改变。",
    ),
    "calibration.stale": (
        "The labelled cases changed since this threshold was shown. Look at the new figures "
        "and choose again. The policy was not changed.",
        "显示该阈值后，有DXA结果的病例已发生变化。请查看新的数据后重新选择。转诊策略未改变。",
    ),
}
