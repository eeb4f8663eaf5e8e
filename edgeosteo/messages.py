"""Wording for every stable code, in English and Simplified Chinese.

Codes are dotted and lower case. Every code used anywhere in the package must have both
languages here; a test enforces it. Sentences are written for a busy technician: what
happened and what to do next.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edgeosteo.messages_account import ACCOUNT_CATALOGUE
from edgeosteo.messages_calibration import CALIBRATION_CATALOGUE
from edgeosteo.messages_clinical import CLINICAL_CATALOGUE
from edgeosteo.messages_ct import CT_CATALOGUE
from edgeosteo.messages_follow_up import FOLLOW_UP_CATALOGUE
from edgeosteo.messages_measure import MEASURE_CATALOGUE
from edgeosteo.messages_photo import PHOTO_CATALOGUE, PHOTO_SHORT_ZH

LANGUAGES = ("en", "zh_CN")

# code -> (English, Simplified Chinese)
CATALOGUE: dict[str, tuple[str, str]] = {
    # --- intake: the file itself ---
    "intake.empty_file": (
        "The file is empty. Export the image again and choose the new file.",
        "文件为空。请重新导出图像并选择新文件。",
    ),
    "intake.not_an_image": (
        "This file is not a radiograph image (DICOM, PNG, JPEG or TIFF).",
        "该文件不是X线图像（DICOM、PNG、JPEG 或 TIFF）。",
    ),
    "intake.truncated": (
        "The file is incomplete or damaged. Copy or export it again.",
        "文件不完整或已损坏。请重新复制或导出。",
    ),
    "intake.corrupt_pixels": (
        "The image data inside the file cannot be read. Export the image again.",
        "文件中的图像数据无法读取。请重新导出图像。",
    ),
    "intake.unsupported_transfer_syntax": (
        "This DICOM compression is not supported. Export uncompressed or JPEG 2000 DICOM.",
        "不支持该DICOM压缩格式。请导出为未压缩或 JPEG 2000 格式的DICOM。",
    ),
    "intake.unsupported_dicom": (
        "This DICOM object holds no single radiograph (for example a report or a series).",
        "该DICOM对象不包含单幅X线图像（例如报告或序列）。",
    ),
    "intake.multi_frame": (
        "The DICOM file holds several frames. Send a single radiograph image.",
        "该DICOM文件包含多帧图像。请发送单幅X线图像。",
    ),
    "intake.too_small": (
        "The image is too small to assess. Send the full-resolution original.",
        "图像太小，无法评估。请发送原始全分辨率图像。",
    ),
    "intake.too_large": (
        "The image is larger than this box accepts. Export it at a lower resolution.",
        "图像超过本设备可接受的大小。请以较低分辨率导出。",
    ),
    "intake.file_too_large": (
        "The file is too large to upload. Export it at a lower resolution.",
        "文件太大，无法上传。请以较低分辨率导出。",
    ),
    "intake.empty_pixels": (
        "The image contains no picture (every pixel is the same). Export it again.",
        "图像没有内容（所有像素相同）。请重新导出。",
    ),
    "intake.invalid_values": (
        "The image contains invalid pixel values. Export it again from the X-ray unit.",
        "图像包含无效像素值。请从X线设备重新导出。",
    ),
    "intake.unreadable_source": (
        "The file could not be opened. Check that it still exists and can be read.",
        "无法打开该文件。请确认文件存在且可读取。",
    ),
    # --- quality gates ---
    "quality.ok": (
        "Image quality is adequate.",
        "图像质量合格。",
    ),
    "quality.resolution_low": (
        "The image resolution is low. Send the original image rather than a screenshot.",
        "图像分辨率偏低。请发送原始图像而非截图。",
    ),
    "quality.resolution_too_low": (
        "The image resolution is too low to assess. Send the original full-resolution image.",
        "图像分辨率过低，无法评估。请发送原始全分辨率图像。",
    ),
    "quality.overexposed": (
        "Large parts of the image are burnt out (pure white or black). Check exposure and retake.",
        "图像大面积过曝或欠曝（纯白或纯黑）。请检查曝光条件后重拍。",
    ),
    "quality.exposure_marginal": (
        "Parts of the image are clipped. The result may be less reliable.",
        "图像部分区域灰度饱和，结果可信度可能下降。",
    ),
    "quality.blurred": (
        "The image is blurred. Keep the patient and the detector still and retake.",
        "图像模糊。请保持患者和探测器静止后重拍。",
    ),
    "quality.soft": (
        "The image is slightly soft. The result may be less reliable.",
        "图像略显模糊，结果可信度可能下降。",
    ),
    "quality.blank": (
        "The image is almost blank. Check the export and retake.",
        "图像几乎为空白。请检查导出设置后重拍。",
    ),
    "quality.not_radiograph": (
        "This does not look like a radiograph (it may be a colour photo or a document). "
        "Choose the X-ray image.",
        "这看起来不是X线图像（可能是彩色照片或文档）。请选择X线图像。",
    ),
    "quality.wrong_modality": (
        "This DICOM is not a plain X-ray (for example CT, MR or ultrasound). Send the radiograph.",
        "该DICOM不是普通X线片（例如CT、MR或超声）。请发送X线平片。",
    ),
    # --- models ---
    "model.unavailable_body_part": (
        "No bone-density model is installed for this body part; the image was checked for "
        "quality only.",
        "本设备未安装该部位的骨密度模型；图像仅做了质量检查。",
    ),
    "model.no_image": (
        "No image was given; only the clinical assessment was made.",
        "未提供图像；仅进行了临床评估。",
    ),
    "model.image_refused": (
        "The image could not be read, so no image model was run.",
        "图像无法读取，因此未运行图像模型。",
    ),
    "model.roi_not_found": (
        "The knee joint could not be found in this image, so the knee model was not run. "
        "Check that it is a standing AP knee view.",
        "未能在图像中找到膝关节，因此未运行膝关节模型。请确认为膝关节正位片。",
    ),
    "image.not_knee": (
        "The image does not look like a knee radiograph, so the knee models were not run. "
        "Check the body part chosen, or send a standing AP knee view.",
        "该图像看起来不是膝关节X线片，因此未运行膝关节模型。请检查所选部位，或发送膝关节站立正位片。",
    ),
    "model.not_run_quality": (
        "The image failed the quality check, so no image model was run.",
        "图像未通过质量检查，因此未运行图像模型。",
    ),
    "model.missing_inputs": (
        "The model needs clinical answers that were not given.",
        "模型所需的临床信息未填写。",
    ),
    "model.experimental": (
        "Experimental result: not used for the recommendation.",
        "实验性结果：不用于推荐意见。",
    ),
    "model.file_missing": (
        "A model file is missing. Reinstall the edgeosteo models.",
        "缺少模型文件。请重新安装 edgeosteo 模型。",
    ),
    "model.hash_mismatch": (
        "A model file has been changed or damaged. Reinstall the edgeosteo models.",
        "模型文件已被修改或损坏。请重新安装 edgeosteo 模型。",
    ),
    "model.manifest_invalid": (
        "A model description file is invalid. Reinstall the edgeosteo models.",
        "模型说明文件无效。请重新安装 edgeosteo 模型。",
    ),
    "model.backend_unavailable": (
        "The inference engine could not start. Contact your IT support.",
        "推理引擎无法启动。请联系信息科支持。",
    ),
    "model.inference_failed": (
        "The model could not process this image.",
        "模型无法处理该图像。",
    ),
    # --- receiver: images from the X-ray unit (DICOM receiver and export folder) ---
    "receiver.sop_class_not_accepted": (
        "This kind of DICOM object is not screened (only CR, DX and secondary capture).",
        "此类DICOM对象不做筛查（仅筛查CR、DX和二次采集图像）。",
    ),
    "receiver.modality_not_screened": (
        "This modality is not screened automatically; only plain radiographs are.",
        "该检查类型不自动筛查；仅自动筛查普通X线片。",
    ),
    "receiver.body_part_not_screened": (
        "No screening model is set up for this body part. The image is kept, not screened.",
        "该部位未配置筛查模型。图像已保存，未筛查。",
    ),
    "receiver.body_part_missing": (
        "The image does not say which body part it shows. Screen it from the page instead.",
        "图像未注明检查部位。请在页面上手动筛查。",
    ),
    "receiver.view_not_screened": (
        "This projection (view) is not screened automatically.",
        "该投照体位不自动筛查。",
    ),
    "receiver.laterality_not_screened": (
        "Both sides are in one image; screening needs one side per image.",
        "一幅图像包含双侧；筛查要求每幅图像只含一侧。",
    ),
    "receiver.patient_too_young": (
        "The patient is younger than the screening age. The image is kept, not screened.",
        "患者未到筛查年龄。图像已保存，未筛查。",
    ),
    "receiver.malformed_dicom": (
        "The DICOM data could not be read. Send the image again from the X-ray unit.",
        "无法读取该DICOM数据。请从X线设备重新发送图像。",
    ),
    "receiver.sop_mismatch": (
        "The image's identifiers do not match what the sender announced. Send it again.",
        "图像标识与发送方声明的不一致。请重新发送。",
    ),
    "receiver.no_pixel_data": (
        "The DICOM object holds no image. Send the radiograph itself.",
        "该DICOM对象不含图像。请发送X线图像本身。",
    ),
    "receiver.duplicate_instance": (
        "This image was received before; the earlier copy is kept.",
        "该图像之前已接收；保留先前的副本。",
    ),
    "receiver.duplicate_conflict": (
        "An image with the same SOP Instance UID but different pixels was sent again. The "
        "first copy is kept; check at the X-ray unit which image is right.",
        "再次收到一幅SOP实例UID相同但像素不同的图像。已保留第一份副本；"
        "请在X线设备上核对哪一幅图像正确。",
    ),
    "receiver.queue_full": (
        "Too many images are waiting for screening. The X-ray unit should send again later.",
        "等待筛查的图像过多。X线设备稍后应重新发送。",
    ),
    "receiver.storage_failed": (
        "The image could not be saved on this box (disk full or failing). Call IT support.",
        "图像无法保存到本设备（磁盘已满或故障）。请联系信息科。",
    ),
    "receiver.screening_failed": (
        "Screening this image failed repeatedly. Screen it from the page or call IT support.",
        "该图像多次筛查失败。请在页面上手动筛查或联系信息科。",
    ),
    # --- configuration ---
    "config.invalid": (
        "The settings file is invalid. Ask your IT support to check it.",
        "设置文件无效。请联系信息科检查。",
    ),
    # --- the right tool for the right image ---
    "image.wrong_body_part": (
        "The body part chosen does not match what the image's own header says, so no image "
        "model was run. Choose the body part the header shows, or confirm your choice if the "
        "header is wrong.",
        "所选部位与图像自身信息记录的部位不一致，因此未运行图像模型。请选择图像信息所示部位；"
        "若图像信息有误，请确认您的选择。",
    ),
    "image.wrong_view": (
        "This model reads another projection (view) than this image's, so it was not run.",
        "该模型适用的投照体位与本图像不同，因此未运行。",
    ),
    "intake.looks_like_photo": (
        "This looks like a phone photo of a film, not a digital X-ray. Upload it again with "
        "\u201cPhone photo of a printed film\u201d selected so it can be corrected before "
        "screening.",
        "这张图像看起来是用手机拍摄的胶片照片，而不是数字X线图像。请选择\u201c手机拍摄的胶片照片\u201d"
        "模式重新上传，以便在筛查前进行校正。",
    ),
    # --- which tool reads a received image (the worklist) ---
    "tool.image_model": (
        "Read by the image model for this body part.",
        "由该部位的图像模型判读。",
    ),
    "tool.none_for_body_part": (
        "No tool reads this body part yet: the case is a clinical screening once the answers "
        "are given.",
        "尚无可判读该部位的工具：补充临床信息后按临床信息进行筛查。",
    ),
    "tool.body_part_unknown": (
        "The image names no body part, so no image tool reads it: the case is a clinical "
        "screening once the answers are given.",
        "图像未记录检查部位，因此没有图像工具判读：补充临床信息后按临床信息进行筛查。",
    ),
    # --- what a request to the page or the API must hold ---
    "request.invalid_date": (
        "The date must be written as YYYY-MM-DD, for example 2026-03-15.",
        "日期格式应为 YYYY-MM-DD，例如 2026-03-15。",
    ),
    "request.nothing_to_screen": (
        "Choose an image or give at least one clinical answer; an empty screening is not stored.",
        "请选择图像或至少填写一项临床信息；空白筛查不会保存。",
    ),
    "request.patient_id_invalid": (
        "The local case number or patient ID must be at most 64 printable characters, "
        "without line breaks or tabs.",
        "本地病例号或患者ID最多64个可打印字符，不能包含换行或制表符。",
    ),
    # --- the command line ---
    "maintenance.refused": (
        "The backup, restore or support bundle was refused; the reason is given beside this.",
        "备份、恢复或支持包操作被拒绝；原因见旁注。",
    ),
    "cli.unexpected": (
        "The command stopped because of an unexpected fault. Nothing was changed by the "
        "failed step; send the message below to IT support.",
        "命令因意外故障而停止，失败的步骤未做任何更改。请把下面的信息发给信息科。",
    ),
    "cli.receiver_port_unavailable": (
        "The DICOM receiver cannot listen on its port: another program (often a running "
        "edgeosteo service) uses it. Stop that program or set another [receiver] port.",
        "DICOM接收端无法监听其端口：另一个程序（通常是正在运行的 edgeosteo 服务）正在使用。"
        "请停止该程序，或在 [receiver] 中设置其他端口。",
    ),
    "cli.data_dir_in_use": (
        "Another edgeosteo process is already using this data directory (usually the "
        "running edgeosteo service). Stop it first, or give this one its own --data-dir.",
        "另一个 edgeosteo 进程正在使用此数据目录（通常是正在运行的 edgeosteo 服务）。"
        "请先停止它，或为本进程指定另一个 --data-dir。",
    ),
    "cli.nothing_to_serve": (
        "There is nothing to serve: the page and every part of the receiver are turned off "
        "in the settings.",
        "没有可启动的服务：设置中已关闭页面和接收端的所有部分。",
    ),
    "sync.not_configured": (
        "This box is not set up to send results to the regional hub yet (address, device "
        "identity or token missing). Nothing was sent.",
        "本设备尚未设置向区域中心发送结果（缺少地址、设备身份或令牌），未发送任何内容。",
    ),
    "bench.server_did_not_start": (
        "The benchmark's own test server did not start, so its memory and start-up time "
        "were not measured.",
        "基准测试自带的测试服务器未能启动，因此未测量其内存和启动时间。",
    ),
}

CATALOGUE.update(CLINICAL_CATALOGUE)
CATALOGUE.update(PHOTO_CATALOGUE)
CATALOGUE.update(MEASURE_CATALOGUE)
CATALOGUE.update(FOLLOW_UP_CATALOGUE)
CATALOGUE.update(CT_CATALOGUE)
CATALOGUE.update(CALIBRATION_CATALOGUE)
CATALOGUE.update(ACCOUNT_CATALOGUE)

# Short Chinese names of the image-quality codes, for lists inside evidence; the advice itself
# is the catalogue's sentence, shown beside it. English evidence keeps the codes as stored.
QUALITY_SHORT_ZH: dict[str, str] = {
    "quality.ok": "图像质量合格",
    "intake.looks_like_photo": "疑似手机拍摄的胶片照片",
    "quality.resolution_low": "分辨率偏低",
    "quality.resolution_too_low": "分辨率过低",
    "quality.overexposed": "大面积过曝或欠曝",
    "quality.exposure_marginal": "部分区域灰度饱和",
    "quality.blurred": "图像模糊",
    "quality.soft": "图像略显模糊",
    "quality.blank": "图像几乎为空白",
    "quality.not_radiograph": "不是X线图像",
    "quality.wrong_modality": "不是普通X线片",
    **PHOTO_SHORT_ZH,
}


def text(code: str, language: str = "en") -> str:
    """The sentence for a code; unknown codes fall back to the code itself, never raise."""
    entry = CATALOGUE.get(code)
    if entry is None:
        return code
    return entry[1] if language.startswith("zh") else entry[0]


@dataclass(frozen=True)
class Evidence:
    """The numbers behind a reason, in English and Simplified Chinese.

    The English text is the one stored and printed since schema 1.0 and keeps answer-field
    names and quality codes as the data spells them; the Chinese text names them in words.
    Numbers, model ids and instrument acronyms are the same in both.
    """

    en: str = ""
    zh_CN: str = ""

    def __add__(self, other: Evidence) -> Evidence:
        return Evidence(self.en + other.en, self.zh_CN + other.zh_CN)


def both(code: str) -> Evidence:
    """A catalogue entry as evidence text (for short names such as ``clinical.band.high``)."""
    return Evidence(text(code, "en"), text(code, "zh_CN"))


def field_names(names: Iterable[str]) -> Evidence:
    """Answer fields: by name in English, by the question's wording in Chinese."""
    listed = tuple(names)
    chinese = (CATALOGUE.get(f"clinical.field.{n}", (n, n))[1] for n in listed)
    return Evidence(", ".join(listed), "、".join(chinese))


def quality_codes(codes: Iterable[str]) -> Evidence:
    """Quality codes: as codes in English, by their short names in Chinese."""
    listed = tuple(codes)
    return Evidence(", ".join(listed), "、".join(QUALITY_SHORT_ZH.get(c, c) for c in listed))
