"""Wording of the measurement codes (``measurement.*``): what went wrong with the taps or
the image, and what to do next, in English and Simplified Chinese."""

from __future__ import annotations

MEASURE_CATALOGUE: dict[str, tuple[str, str]] = {
    # --- refusals: never a number ---
    "measurement.unknown_method": (
        "This measurement method is not installed on this box.",
        "本设备未安装该测量方法。",
    ),
    "measurement.card_invalid": (
        "The measurement method's card is missing or does not match its program. Ask IT "
        "support to reinstall edgeosteo.",
        "测量方法的说明卡缺失或与程序不符。请联系信息科重新安装 edgeosteo。",
    ),
    "measurement.no_image": (
        "A measurement needs an image. Choose the radiograph first.",
        "测量需要图像。请先选择X线图像。",
    ),
    "measurement.image_unusable": (
        "The image did not pass the quality check, so nothing was measured. Retake it.",
        "图像未通过质量检查，未进行测量。请重新拍摄。",
    ),
    "measurement.wrong_body_part": (
        "This measurement does not apply to this body part or view. Choose the method for "
        "this image, or check the body part.",
        "该测量不适用于此部位或体位。请选择适合此图像的测量方法，或核对部位。",
    ),
    "measurement.no_scale": (
        "This measurement needs millimetres, and this image has no known scale (a photo of "
        "a film, or a file without pixel spacing). Send the DICOM file from the X-ray unit.",
        "该测量需要以毫米计，而此图像比例未知（胶片照片或无像素间距的文件）。请发送X线机导出的DICOM文件。",
    ),
    "measurement.too_few_points": (
        "Not enough points were tapped for this measurement. Tap every point the picture shows.",
        "该测量所需的点不够。请按示意图点击所有的点。",
    ),
    "measurement.too_many_points": (
        "More points were tapped than this measurement uses. Clear the points and tap "
        "again as the picture shows.",
        "点击的点多于该测量所需。请清除后按示意图重新点击。",
    ),
    "measurement.point_outside_image": (
        "A point is outside the image. Tap again on the bone.",
        "有点位于图像之外。请在骨骼上重新点击。",
    ),
    "measurement.points_too_close": (
        "The points are too close together. Tap them where the picture shows, further apart.",
        "点与点之间太近。请按示意图位置点击，并拉开距离。",
    ),
    "measurement.level_outside_image": (
        "The measuring level (10 cm below the lesser trochanter) is outside the image. Send "
        "a film that shows the femoral shaft further down, or check the first point.",
        "测量平面（小转子下方10厘米）超出图像范围。请发送显示更多股骨干的图像，或核对第一个点。",
    ),
    "measurement.edge_not_found": (
        "The bone's edges could not be found where you tapped. Tap on the middle of the "
        "bone, or retake the image if it is blurred.",
        "在点击处找不到骨骼边缘。请点击骨骼中部；如图像模糊，请重新拍摄。",
    ),
    "measurement.not_bone": (
        "No bone was found where you tapped (soft tissue or background). Tap on the bone "
        "the picture shows.",
        "点击处未发现骨骼（软组织或背景）。请点击示意图所示的骨骼。",
    ),
    "measurement.wrong_bone": (
        "The tapped bone does not look like the one this measurement needs. Check the "
        "picture and tap the right bone.",
        "所点击的骨骼与该测量所需的不符。请对照示意图点击正确的骨骼。",
    ),
    "measurement.implausible": (
        "The measured value is outside what a real bone shows, so it is not reported. "
        "Tap again; retake the image if this repeats.",
        "测得的数值超出真实骨骼的范围，不予报告。请重新点击；如反复出现，请重新拍摄。",
    ),
    "measurement.no_magnification": (
        "The magnification of this unit is not set, so millimetres are unknown. Ask IT "
        "support to enter the unit's magnification in the settings.",
        "未设置该设备的放大倍数，无法换算毫米。请联系信息科在设置中填写该设备的放大倍数。",
    ),
    "measurement.points_out_of_order": (
        "The points are not in the order the picture shows. Clear them and tap again in "
        "that order.",
        "点击顺序与示意图不符。请清除后按示意图顺序重新点击。",
    ),
    "measurement.level_sequence_invalid": (
        "The vertebra levels are not a continuous sequence. Check the first level and tap "
        "neighbouring vertebrae in order.",
        "椎体节段不连续。请核对起始节段，并按顺序点击相邻椎体。",
    ),
    "measurement.implausible_height": (
        "A vertebra's height is negative or implausible. Check that its six points are on "
        "its endplates.",
        "某椎体高度为负值或不合理。请检查其六个点是否位于终板上。",
    ),
    "measurement.failed": (
        "The measurement could not be made because of a software fault. The case is kept; "
        "tell IT support.",
        "因软件故障未能测量。病例已保存；请告知信息科。",
    ),
    # --- what a measured band points to (evidence gives the value, cut-off and source) ---
    "measurement.band.osteoporosis_likely": (
        "Measurement below the published cut-off for osteoporosis",
        "测量值低于文献报道的骨质疏松切点",
    ),
    "measurement.band.low_bone_mass": (
        "Measurement below the published cut-off for low bone mass",
        "测量值低于文献报道的低骨量切点",
    ),
    "measurement.band.normal": (
        "Measurement above the published cut-offs (this cannot rule out osteoporosis)",
        "测量值高于文献报道的切点（不能排除骨质疏松）",
    ),
    "measurement.band.vertebral_fracture": (
        "Probable osteoporotic vertebral fracture: treat and refer, DXA alone is not enough",
        "可能存在骨质疏松性椎体骨折：需治疗并转诊，仅做DXA不够",
    ),
    "measurement.band.possible_vertebral_fracture": (
        "Possible vertebral fracture (one mild deformity): refer for DXA and a reading",
        "可能存在椎体骨折（一处轻度变形）：建议DXA检查并请医生阅片",
    ),
    "measurement.band.no_vertebral_fracture": (
        "No vertebral fracture found on the measured vertebrae (this cannot rule out osteoporosis)",
        "所测椎体未见骨折（不能排除骨质疏松）",
    ),
    "measurement.information_only": (
        "Measurement shown for information: this site does not count it for the referral",
        "测量结果仅供参考：本机构未将其计入转诊判断",
    ),
    "request.measurement_points_invalid": (
        "The measurement points could not be read. Tap the points again.",
        "无法读取测量点。请重新点击。",
    ),
}
