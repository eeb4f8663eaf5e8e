"""Wording of the CT series codes (``intake.ct_*``) and of the CT L1 method's refusals and
checks (``measurement.ct_*``), in English and Simplified Chinese."""

from __future__ import annotations

CT_CATALOGUE: dict[str, tuple[str, str]] = {
    # --- series intake: the folder is refused, nothing is measured ---
    "intake.ct_not_a_folder": (
        "A CT measurement needs the folder holding the series' slices. Choose the folder.",
        "CT测量需要存放该序列所有层面的文件夹。请选择该文件夹。",
    ),
    "intake.ct_no_dicom": (
        "The folder holds no DICOM images. Export the CT series from the scanner or PACS "
        "as DICOM files.",
        "该文件夹中没有DICOM图像。请从CT机或PACS将序列导出为DICOM文件。",
    ),
    "intake.ct_not_ct": (
        "The images in the folder are not CT. This measurement reads CT series only.",
        "文件夹中的图像不是CT。此测量只读取CT序列。",
    ),
    "intake.ct_not_a_series": (
        "This is not a CT series: fewer than 3 slices were found (a single image cannot be "
        "measured). Export the whole axial series.",
        "这不是一个CT序列：层面少于3层（单张图像无法测量）。请导出完整的轴位序列。",
    ),
    "intake.ct_localizer_mixed": (
        "A localizer (scout) or an image in another orientation is mixed into the series. "
        "Export the axial series on its own.",
        "序列中混入了定位像或其他方向的图像。请单独导出轴位序列。",
    ),
    "intake.ct_mixed_series": (
        "The folder holds more than one CT series. Put one series in the folder (for "
        "example only the thin-slice or only the standard series).",
        "文件夹中有不止一个CT序列。请在文件夹中只放一个序列（例如只放薄层或只放常规层厚序列）。",
    ),
    "intake.ct_no_geometry": (
        "Some slices have no position or orientation in their header, so they cannot be "
        "put in order. Export the original series from the scanner.",
        "部分层面的文件头中没有位置或方向信息，无法排序。请从CT机导出原始序列。",
    ),
    "intake.ct_slices_differ": (
        "The slices differ in size or pixel spacing, so they are not one series. Export the "
        "series again.",
        "各层面的大小或像素间距不一致，不属于同一序列。请重新导出该序列。",
    ),
    "intake.ct_too_many_slices": (
        "The series is larger than this box reads (more than about 1000 slices of 512x512). "
        "Export a thicker reconstruction (1-5 mm) of the spine region.",
        "该序列超出本设备可读取的大小（超过约1000层512x512图像）。"
        "请导出脊柱区域1-5毫米层厚的重建序列。",
    ),
    "intake.ct_not_axial": (
        "The series is not axial (it is a sagittal or coronal reconstruction). Export the "
        "axial series.",
        "该序列不是轴位（为矢状位或冠状位重建）。请导出轴位序列。",
    ),
    "intake.ct_duplicate_position": (
        "Two slices lie at the same position: the series was exported twice into the "
        "folder, or two reconstructions are mixed. Export the series once.",
        "有两个层面位于同一位置：序列被重复导出到该文件夹，或混入了两个重建序列。请只导出一次。",
    ),
    "intake.ct_slice_gap": (
        "A slice is missing from the series (a gap between slices). Export the whole series "
        "again, or wait until the transfer has finished.",
        "序列中缺少层面（层面之间有间隔）。请重新导出完整序列，或等待传输完成。",
    ),
    "intake.ct_uneven_spacing": (
        "The slices are not evenly spaced, so heights along the spine would be wrong. "
        "Export an evenly spaced axial reconstruction.",
        "层面间距不均匀，沿脊柱方向的距离会出错。请导出间距均匀的轴位重建序列。",
    ),
    "intake.ct_corrupt_slice": (
        "A slice file in the series is damaged and cannot be read. Export the series again.",
        "序列中有层面文件损坏，无法读取。请重新导出该序列。",
    ),
    # --- the CT L1 measurement: refusals ---
    "measurement.ct_needs_series": (
        "This measurement reads a CT series (a folder of slices), not a single image.",
        "此测量读取CT序列（包含各层面的文件夹），而不是单张图像。",
    ),
    "measurement.ct_level_unknown": (
        "The vertebral level must be T12, L1 or L2.",
        "椎体节段必须是T12、L1或L2。",
    ),
    "measurement.ct_tap_missing": (
        "Tap the centre of the vertebral body on the sagittal image.",
        "请在矢状位图像上点击椎体中心。",
    ),
    "measurement.ct_tap_outside": (
        "The tap is outside the sagittal image. Tap the centre of the vertebral body.",
        "点击位置在矢状位图像之外。请点击椎体中心。",
    ),
    "measurement.ct_body_not_found": (
        "No vertebral body was found at the tap (the tap is on a disc, soft tissue or the "
        "canal, or the body's outline cannot be read). Tap the middle of the body.",
        "点击处未找到椎体（点在椎间盘、软组织或椎管上，或椎体轮廓无法识别）。请点击椎体中部。",
    ),
    "measurement.ct_too_few_slices": (
        "Fewer than 3 slices lie inside the vertebral body between its endplates, so the "
        "average is not reliable. Export a thinner reconstruction (5 mm or less).",
        "椎体上下终板之间的层面少于3层，平均值不可靠。请导出更薄的重建序列（5毫米或以下）。",
    ),
    "measurement.ct_implausible": (
        "The attenuation found is outside what a vertebral body holds; nothing was reported. "
        "Check the tap and the series.",
        "测得的CT值超出椎体的合理范围，未报告结果。请检查点击位置和序列。",
    ),
    # --- the CT L1 measurement: checks that qualify the number ---
    "measurement.ct_check_ok": (
        "Check passed.",
        "检查通过。",
    ),
    "measurement.ct_kvp_not_120": (
        "The scan was not taken at 120 kV. The HU thresholds were set on 120 kV scans; bone "
        "reads higher at lower kV and lower at higher kV, so the band is a guide only.",
        "该扫描不是在120 kV下进行的。CT值阈值基于120 kV扫描制定；"
        "管电压越低骨的CT值越高，越高则越低，因此分级仅供参考。",
    ),
    "measurement.ct_kvp_unknown": (
        "The tube voltage (kV) is not in the header; the HU thresholds hold at 120 kV only.",
        "文件头中没有管电压（kV）；CT值阈值仅适用于120 kV。",
    ),
    "measurement.ct_contrast": (
        "The series was taken with intravenous contrast, which raises the bone's HU; the "
        "thresholds were set on scans without contrast, so a low value still counts but a "
        "normal band may hide low bone density.",
        "该序列使用了静脉对比剂，会使骨的CT值升高；阈值基于平扫制定，"
        "因此低值仍有意义，但正常分级可能掩盖骨密度降低。",
    ),
    "measurement.ct_thick_slices": (
        "The slices are thicker than 5 mm, so the endplates blur into the measured slices. "
        "Use a reconstruction of 5 mm or less if one exists.",
        "层厚大于5毫米，终板会混入测量层面。如有5毫米或以下的重建序列，请使用它。",
    ),
    "measurement.ct_thickness_unknown": (
        "The slice thickness is not in the header; the slice spacing was used instead.",
        "文件头中没有层厚；已改用层间距。",
    ),
    "measurement.ct_air_drift": (
        "Air outside the patient does not read about -1000 HU: the scanner's calibration may "
        "have drifted, and the bone value with it. Ask for the scanner's daily air and water "
        "check.",
        "患者体外空气的CT值不在-1000 HU左右：CT机校准可能发生漂移，骨的CT值也会随之偏移。"
        "请核查CT机的每日空气/水校准。",
    ),
    "measurement.ct_fat_drift": (
        "Subcutaneous fat does not read about -100 HU: the scanner's calibration may have "
        "drifted, and the bone value with it. Ask for the scanner's daily water check.",
        "皮下脂肪的CT值不在-100 HU左右：CT机校准可能发生漂移，骨的CT值也会随之偏移。"
        "请核查CT机的每日水模校准。",
    ),
    "measurement.ct_level_not_l1": (
        "The published thresholds were set at L1; at T12 or L2 the band is a guide only.",
        "已发表的阈值基于L1椎体制定；在T12或L2测量时，分级仅供参考。",
    ),
    "measurement.ct_reference_not_found": (
        "No air or subcutaneous fat was found on the measured slices to check the "
        "calibration against.",
        "在测量层面上未找到可用于核查校准的空气或皮下脂肪。",
    ),
}
