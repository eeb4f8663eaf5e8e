"""Wording for the clinical instruments' and the referral decision's codes (en, zh_CN).

Patient-facing referral sentences are plain and avoid numbers; clinician-facing ones name the
action. A routine outcome always says that a low result cannot rule out osteoporosis.
"""

from __future__ import annotations


def _model_result_codes(prefix: str, en: str, zh: str) -> dict[str, tuple[str, str]]:
    """The same findings wording for image results and for clinical-model results."""
    return {
        f"{prefix}.p_osteoporosis_above_threshold": (
            f"The {en} gives a probability of osteoporosis at or above this site's referral "
            "threshold.",
            f"{zh}提示骨质疏松的概率达到或超过本机构的转诊阈值。",
        ),
        f"{prefix}.p_osteoporosis_above_consider_threshold": (
            f"The {en} gives a probability of osteoporosis at or above this site's threshold "
            "for considering DXA.",
            f"{zh}提示骨质疏松的概率达到或超过本机构建议考虑DXA检查的阈值。",
        ),
        f"{prefix}.p_osteoporosis_below_threshold": (
            f"The {en} gives a probability of osteoporosis below this site's thresholds.",
            f"{zh}提示骨质疏松的概率低于本机构的阈值。",
        ),
        f"{prefix}.p_low_bone_mass_above_threshold": (
            f"The {en} gives a probability of low bone mass at or above this site's threshold.",
            f"{zh}提示低骨量的概率达到或超过本机构的阈值。",
        ),
        f"{prefix}.p_low_bone_mass_below_threshold": (
            f"The {en} gives a probability of low bone mass below this site's threshold.",
            f"{zh}提示低骨量的概率低于本机构的阈值。",
        ),
        f"{prefix}.t_score_refer": (
            f"The {en} estimates a T-score in the osteoporosis range. It is an estimate, not a "
            "measurement.",
            f"{zh}估计的T值处于骨质疏松范围。这是估计值，不是测量值。",
        ),
        f"{prefix}.t_score_consider": (
            f"The {en} estimates a T-score in the low bone mass range. It is an estimate, not a "
            "measurement.",
            f"{zh}估计的T值处于低骨量范围。这是估计值，不是测量值。",
        ),
        f"{prefix}.t_score_above": (
            f"The {en} estimates a T-score above the low bone mass range. It is an estimate, "
            "not a measurement.",
            f"{zh}估计的T值高于低骨量范围。这是估计值，不是测量值。",
        ),
    }


# code -> (English, Simplified Chinese)
CLINICAL_CATALOGUE: dict[str, tuple[str, str]] = {
    # --- answers as entered ---
    "answers.invalid": (
        "Some clinical answers are invalid. Check the values entered.",
        "部分临床信息无效。请检查填写的数值。",
    ),
    "answers.unknown_field": (
        "An answer was given for a question this tool does not ask; it was ignored.",
        "填写了本工具未询问的项目，已忽略。",
    ),
    "answers.wrong_type": (
        "This answer is not in the expected form (a number, yes/no, or female/male). Enter it "
        "again.",
        "该项填写格式不正确（应为数字、是/否或女/男）。请重新填写。",
    ),
    "answers.out_of_range": (
        "This value is outside the plausible range. Check the number and its unit.",
        "该数值超出合理范围。请核对数值及单位。",
    ),
    "answers.height_units": (
        "Height looks like centimetres. Enter height in metres (for example 1.62).",
        "身高似乎以厘米填写。请以米为单位填写（例如 1.62）。",
    ),
    "answers.needed_by_model": (
        "Enter this: the clinical model that makes the recommendation needs it, and without "
        "it the model does not run.",
        "请填写此项：作出推荐意见的临床模型需要它，未填写时该模型不运行。",
    ),
    "answers.inconsistent": (
        "This answer contradicts another answer; it was left out. Check both.",
        "该项与其他填写内容矛盾，已暂不采用。请核对相关项目。",
    ),
    # --- field names, for forms and for lists of missing answers ---
    "clinical.field.age_years": ("Age (years)", "年龄（岁）"),
    "clinical.field.sex": ("Sex", "性别"),
    "clinical.field.weight_kg": ("Weight (kg)", "体重（千克）"),
    "clinical.field.height_m": ("Height (m)", "身高（米）"),
    "clinical.field.prior_fragility_fracture": (
        "Broken a bone from a minor fall or less, as an adult",
        "成年后曾因轻微外力（如平地跌倒）发生骨折",
    ),
    "clinical.field.fracture_sites_after_45": (
        "Number of fracture types after age 45 from minor trauma (wrist, rib, hip)",
        "45岁以后轻微外力骨折的部位数（腕部、肋骨、髋部）",
    ),
    "clinical.field.glucocorticoids_3_months": (
        "Glucocorticoid (steroid) tablets for 3 months or more",
        "口服糖皮质激素（激素类药物）3个月及以上",
    ),
    "clinical.field.estrogen_current": (
        "Currently taking estrogen or hormone replacement therapy",
        "目前正在使用雌激素或激素替代治疗",
    ),
    "clinical.field.estrogen_ever": (
        "Ever taken estrogen or hormone replacement therapy",
        "曾经使用过雌激素或激素替代治疗",
    ),
    "clinical.field.postmenopausal": ("Periods have stopped (menopause)", "已绝经"),
    "clinical.field.menopause_age_years": ("Age at menopause (years)", "绝经年龄（岁）"),
    "clinical.field.rheumatoid_arthritis": ("Rheumatoid arthritis", "类风湿关节炎"),
    "clinical.field.secondary_causes": (
        "A disease or medicine known to affect bone",
        "患有影响骨代谢的疾病或使用影响骨代谢的药物",
    ),
    "clinical.field.iof_one_minute_positive": (
        "IOF one-minute osteoporosis test positive",
        "IOF骨质疏松风险一分钟测试阳性",
    ),
    "clinical.field.black_ancestry": ("Black African ancestry", "黑种人血统"),
    "clinical.field.current_smoker": ("Currently smokes", "目前吸烟"),
    "clinical.field.alcohol_3_units_daily": (
        "Three or more alcoholic drinks a day",
        "每日饮酒3个单位及以上",
    ),
    "clinical.field.family_history_osteoporosis": (
        "Parent with a hip fracture or osteoporosis",
        "父母有髋部骨折或骨质疏松病史",
    ),
    "clinical.field.radiograph_osteoporotic_change": (
        "Radiograph reported to show osteoporotic change",
        "X线报告提示骨质疏松改变",
    ),
    "clinical.field.entered_t_score": ("Measured T-score (DXA)", "已测得的T值（DXA）"),
    # --- risk factors that are not a single answer, for evidence ---
    "clinical.risk_factor.low_bmi": ("Body mass index below 18.5", "体重指数（BMI）低于18.5"),
    "clinical.risk_factor.early_menopause": ("Menopause before age 45", "45岁前绝经"),
    # --- instrument and WHO band names, for evidence ---
    "clinical.band.low": ("low", "低风险"),
    "clinical.band.intermediate": ("intermediate", "中风险"),
    "clinical.band.moderate": ("moderate", "中风险"),
    "clinical.band.high": ("high", "高风险"),
    "clinical.band.normal": ("normal", "骨量正常"),
    "clinical.band.low_bone_mass": ("low bone mass", "低骨量"),
    "clinical.band.osteoporosis": ("osteoporosis", "骨质疏松"),
    "clinical.band.severe_osteoporosis": ("severe osteoporosis", "严重骨质疏松"),
    # --- instrument names ---
    "clinical.instrument.osta": (
        "OSTA (Osteoporosis Self-assessment Tool for Asians)",
        "OSTA（亚洲人骨质疏松自我筛查工具）",
    ),
    "clinical.instrument.ost_men": (
        "OST for men (Osteoporosis Self-assessment Tool)",
        "男性OST（骨质疏松自我评估工具）",
    ),
    "clinical.instrument.orai": (
        "ORAI (Osteoporosis Risk Assessment Instrument)",
        "ORAI（骨质疏松风险评估工具）",
    ),
    "clinical.instrument.score": (
        "SCORE (Simple Calculated Osteoporosis Risk Estimation)",
        "SCORE（简易骨质疏松风险评估）",
    ),
    "clinical.instrument.osiris": (
        "OSIRIS (Osteoporosis Index of Risk)",
        "OSIRIS（骨质疏松风险指数）",
    ),
    "clinical.instrument.who": (
        "WHO T-score classification",
        "WHO T值分级",
    ),
    # --- instrument bands ---
    "clinical.osta_low": ("OSTA above -1: low risk.", "OSTA大于-1：低风险。"),
    "clinical.osta_intermediate": (
        "OSTA between -1 and -4: intermediate risk; DXA is recommended.",
        "OSTA在-1至-4之间：中风险，建议DXA检查。",
    ),
    "clinical.osta_high": (
        "OSTA below -4: high risk of osteoporosis.",
        "OSTA小于-4：骨质疏松高风险。",
    ),
    "clinical.ost_men_low": ("OST (men) 4 or above: low risk.", "男性OST不低于4：低风险。"),
    "clinical.ost_men_moderate": (
        "OST (men) between -1 and 3: moderate risk; at -1 the guideline's OSTA indication refers.",
        "男性OST在-1至3之间：中风险；等于-1时符合指南OSTA指征，应转诊。",
    ),
    "clinical.ost_men_high": (
        "OST (men) -2 or below: high risk of osteoporosis.",
        "男性OST不高于-2：骨质疏松高风险。",
    ),
    "clinical.orai_low": (
        "ORAI below 9: the tool does not select for bone density testing.",
        "ORAI小于9：该工具不建议骨密度检查。",
    ),
    "clinical.orai_high": (
        "ORAI 9 or above: the tool selects for bone density testing.",
        "ORAI不低于9：该工具建议骨密度检查。",
    ),
    "clinical.score_low": (
        "SCORE below 6: the tool does not select for bone density testing.",
        "SCORE小于6：该工具不建议骨密度检查。",
    ),
    "clinical.score_high": (
        "SCORE 6 or above: the tool selects for bone density testing.",
        "SCORE不低于6：该工具建议骨密度检查。",
    ),
    "clinical.osiris_low": ("OSIRIS above 1: low risk.", "OSIRIS大于1：低风险。"),
    "clinical.osiris_intermediate": (
        "OSIRIS between -3 and 1: intermediate risk.",
        "OSIRIS在-3至1之间：中风险。",
    ),
    "clinical.osiris_high": (
        "OSIRIS below -3: high risk of osteoporosis.",
        "OSIRIS小于-3：骨质疏松高风险。",
    ),
    "clinical.who_normal": (
        "Measured T-score -1 or above: normal bone density (WHO).",
        "测得T值不低于-1：骨量正常（WHO标准）。",
    ),
    "clinical.who_low_bone_mass": (
        "Measured T-score between -1 and -2.5: low bone mass (osteopenia, WHO).",
        "测得T值在-1至-2.5之间：低骨量（WHO标准）。",
    ),
    "clinical.who_osteoporosis": (
        "Measured T-score -2.5 or below: osteoporosis (WHO).",
        "测得T值不高于-2.5：骨质疏松（WHO标准）。",
    ),
    "clinical.who_severe_osteoporosis": (
        "Measured T-score -2.5 or below with a fragility fracture: severe osteoporosis (WHO).",
        "测得T值不高于-2.5且有脆性骨折：严重骨质疏松（WHO标准）。",
    ),
    "clinical.not_applicable.men": (
        "This tool was developed in women only and is not used for men.",
        "该工具仅在女性中建立，不用于男性。",
    ),
    "clinical.not_applicable.women": (
        "This tool is for men; for women OSTA is used.",
        "该工具用于男性；女性使用OSTA。",
    ),
    "clinical.not_applicable.under_45": (
        "This tool is defined from age 45 only.",
        "该工具仅适用于45岁及以上。",
    ),
    "clinical.caveat.premenopausal": (
        "This tool was developed in women after menopause; read the result with care.",
        "该工具在绝经后女性中建立，请谨慎解读结果。",
    ),
    "clinical.missing_answers": (
        "A counted risk tool could not be calculated because answers are missing.",
        "因信息未填写，无法计算所采用的风险评估工具。",
    ),
    "clinical.incomplete": (
        "Some clinical questions were not answered. Answer them for a fuller assessment.",
        "部分临床问题未填写。补充后评估更全面。",
    ),
    # --- guideline DXA indications ---
    "clinical.indication.age": (
        "Woman aged 65 or over, or man aged 70 or over: DXA is indicated by the guideline.",
        "女性65岁及以上或男性70岁及以上：指南建议行DXA检查。",
    ),
    "clinical.indication.younger_with_risk_factors": (
        "Younger than that age with one or more risk factors for osteoporosis: DXA is "
        "indicated by the guideline.",
        "未达上述年龄但有一个或多个骨质疏松危险因素：指南建议行DXA检查。",
    ),
    "clinical.indication.fragility_fracture": (
        "Fragility fracture in adulthood: DXA is indicated by the guideline.",
        "成年后有脆性骨折史：指南建议行DXA检查。",
    ),
    "clinical.indication.glucocorticoids": (
        "Long-term glucocorticoid use: DXA is indicated by the guideline.",
        "长期使用糖皮质激素：指南建议行DXA检查。",
    ),
    "clinical.indication.bone_disease_or_drugs": (
        "A disease or medicine affecting bone: DXA is indicated by the guideline.",
        "患有影响骨代谢的疾病或使用影响骨代谢的药物：指南建议行DXA检查。",
    ),
    "clinical.indication.radiograph_change": (
        "The radiograph was reported to show osteoporotic change: DXA is indicated by the "
        "guideline.",
        "X线片已报告骨质疏松改变：指南建议行DXA检查。",
    ),
    "clinical.indication.osta": (
        "OSTA -1 or below: DXA is indicated by the guideline.",
        "OSTA不高于-1：指南建议行DXA检查。",
    ),
    "clinical.indication.iof_positive": (
        "IOF one-minute test positive: DXA is indicated by the guideline.",
        "IOF一分钟测试阳性：指南建议行DXA检查。",
    ),
    # --- model findings ---
    **_model_result_codes("image", "image result", "图像结果"),
    **_model_result_codes("clinical_model", "clinical model", "临床模型"),
    "image.quality_warning": (
        "The image passed the quality check with a warning; the image result may be less reliable.",
        "图像通过质量检查但有警示；图像结果的可信度可能下降。",
    ),
    "image.not_used_quality_failed": (
        "The image failed the quality check, so its result was not used.",
        "图像未通过质量检查，其结果未被采用。",
    ),
    "image.not_used_no_quality_report": (
        "An image result came without a quality check, so it was not used.",
        "图像结果没有质量检查记录，因此未被采用。",
    ),
    # --- the decision ---
    "decision.model_missing_answers": (
        "The clinical model that makes the recommendation did not run, because answers it "
        "needs are missing. This recommendation rests on the other checks only. Add the "
        "answers to decide again.",
        "作出推荐意见的临床模型未运行：缺少它需要的临床信息。本推荐仅基于其他检查。请补充后重新判断。",
    ),
    "decision.estimated_t_score": (
        "The model's estimated T-score is shown for information; it is not a DXA measurement.",
        "模型估计的T值仅供参考，不是DXA测量值。",
    ),
    "decision.model_below_baselines": (
        "Clinical model result shown for information only: on its development data it did not "
        "rank patients better than age alone and OSTA in cross-validation and with each "
        "source held out, so the guideline indications decide the recommendation.",
        "临床模型结果仅供参考：在其建模数据的交叉验证和逐一留出来源验证中，"
        "其区分能力未优于单独年龄和OSTA，因此由指南指征决定推荐意见。",
    ),
    "decision.experimental_finding": (
        "Experimental result shown for information only; it did not affect the recommendation.",
        "实验性结果仅供参考，未影响推荐意见。",
    ),
    "decision.secondary_finding": (
        "Another approved model's result is shown for information; the recommendation used "
        "the preferred model.",
        "另一已批准模型的结果仅供参考；推荐意见采用了首选模型。",
    ),
    "decision.finding_without_output": (
        "A model returned no usable output, so it was not used.",
        "模型未返回可用结果，因此未被采用。",
    ),
    "decision.fracture_with_probable_osteoporosis": (
        "Fragility fracture together with a high probability of osteoporosis: very high "
        "fracture risk.",
        "脆性骨折史并伴有较高的骨质疏松概率：骨折风险极高。",
    ),
    "decision.clinical_only": (
        "No usable image result: this recommendation rests on the clinical answers only.",
        "无可用的图像结果：本推荐仅基于临床信息。",
    ),
    "decision.retake_advised": (
        "The image could not be used. The recommendation stands on the other information; "
        "retake the image if it is still needed.",
        "图像无法使用。推荐意见基于其他信息；如仍需图像，请重拍。",
    ),
    "decision.image_unusable": (
        "The image could not be used and the other information is not enough. Retake the image.",
        "图像无法使用，其他信息不足以判断。请重拍图像。",
    ),
    "decision.insufficient_information": (
        "Not enough information to assess. Answer at least age, sex, weight and fracture "
        "history, or add a usable radiograph.",
        "信息不足，无法评估。请至少填写年龄、性别、体重和骨折史，或提供合格的X线片。",
    ),
    "decision.dxa_local": (
        "DXA is available at this site.",
        "本机构可行DXA检查。",
    ),
    "decision.dxa_not_local": (
        "DXA is not available at this site: refer to the nearest hospital that offers it.",
        "本机构无DXA设备：请转诊至最近的可行DXA检查的医院。",
    ),
    # --- the referral categories ---
    "referral.cannot_assess.patient": (
        "We could not assess your bone health today because some information is missing. "
        "The staff will ask you a few more questions.",
        "由于部分信息缺失，今天无法评估您的骨骼健康。工作人员会再询问您几个问题。",
    ),
    "referral.cannot_assess.clinician": (
        "Cannot assess: too little clinical information, and no image or measurement result "
        "that may set the recommendation. Complete the answers. This is not a normal result.",
        "无法评估：临床信息过少，且没有可用于判断的图像或测量结果。请补充信息。这不是正常结果。",
    ),
    "referral.retake.patient": (
        "The picture could not be used. We need to take it again.",
        "图像无法使用，需要重新拍摄。",
    ),
    "referral.retake.clinician": (
        "Retake: the image is unusable and the other information does not suffice. This is "
        "not a normal result.",
        "重拍：图像无法使用，其他信息不足以判断。这不是正常结果。",
    ),
    "referral.routine.patient": (
        "No sign of high risk was found today. A low result cannot rule out osteoporosis. "
        "Have a check again at the interval given, or sooner if you break a bone or your "
        "health changes.",
        "本次未发现高风险迹象。低风险结果不能排除骨质疏松。请按建议的间隔复查；"
        "如发生骨折或健康状况变化，请提前就诊。",
    ),
    "referral.routine.clinician": (
        "Routine: no referral indicated now; re-screen at the interval shown. A low score "
        "cannot rule out osteoporosis; refer on clinical judgement.",
        "常规：目前无需转诊，请按所示间隔复筛。低分不能排除骨质疏松；可根据临床判断转诊。",
    ),
    "referral.consider.patient": (
        "A bone density scan (DXA) may be useful for you. Please talk to your doctor about it.",
        "骨密度检查（DXA）可能对您有帮助。请与医生商量。",
    ),
    "referral.consider.clinician": (
        "Consider DXA: a moderate finding, short of the guideline's DXA indications. Ask about "
        "what would settle it: a fragility fracture, glucocorticoids, a disease or medicine "
        "affecting bone, or a positive IOF one-minute test means refer; without any, "
        "re-screen at the routine interval.",
        "考虑DXA：存在中等风险结果，但未达到指南的DXA指征。请询问可据以判断的信息："
        "有脆性骨折、使用糖皮质激素、患有影响骨代谢的疾病或使用相关药物、或IOF一分钟测试阳性"
        "者应转诊；均无者按常规间隔复筛。",
    ),
    "referral.refer.patient": (
        "You should have a bone density scan (DXA). Please book it soon.",
        "建议您进行骨密度检查（DXA）。请尽快预约。",
    ),
    "referral.refer.clinician": (
        "Refer for DXA: a guideline DXA indication or a high-risk finding is present.",
        "转诊行DXA检查：存在指南DXA指征或高风险结果。",
    ),
    "referral.urgent.patient": (
        "You should see a doctor about your bones soon and have a bone density scan (DXA). "
        "Please do not wait.",
        "建议您尽快就医评估骨骼情况并进行骨密度检查（DXA）。请不要拖延。",
    ),
    "referral.urgent.clinician": (
        "Urgent: fragility fracture with osteoporosis or a high probability of it. Refer "
        "promptly for DXA and treatment assessment.",
        "紧急：脆性骨折伴骨质疏松或高度怀疑骨质疏松。请尽快转诊行DXA检查及治疗评估。",
    ),
}
