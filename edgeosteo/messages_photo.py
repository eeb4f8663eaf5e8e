"""Wording for the phone-photo pipeline's codes (en, zh_CN)."""

from __future__ import annotations

# where on the film a reflection sits (edgeosteo.intake.photo names the 3 x 3 grid cells)
_PLACES: dict[str, tuple[str, str]] = {
    "upper_left": ("upper left", "左上方"),
    "top": ("top", "上方"),
    "upper_right": ("upper right", "右上方"),
    "left": ("left side", "左侧"),
    "centre": ("centre", "中央"),
    "right": ("right side", "右侧"),
    "lower_left": ("lower left", "左下方"),
    "bottom": ("bottom", "下方"),
    "lower_right": ("lower right", "右下方"),
}

# code -> (English, Simplified Chinese)
PHOTO_CATALOGUE: dict[str, tuple[str, str]] = {
    "photo.not_a_photo": (
        "This is a DICOM file, not a photograph. Screen it as a digital radiograph.",
        "这是DICOM文件，不是照片。请按数字X线图像进行筛查。",
    ),
    "photo.no_film_found": (
        "The edges of the film could not be found, so the whole photo was used. Make sure "
        "all four corners of the film show against the lit lightbox, or tap the film's four "
        "corners on the screen.",
        "未能找到胶片边缘，已使用整张照片。请确保胶片的四个角在亮着的观片灯上清晰可见，"
        "或在屏幕上依次点击胶片的四个角。",
    ),
    "photo.bad_corners": (
        "The four corners marked do not outline the film. Tap the film's four corners again, "
        "one at each corner, inside the photo.",
        "标记的四个点没有框出胶片。请重新在照片内依次点击胶片的四个角，每个角点一次。",
    ),
    "photo.too_narrow": (
        "This picture is too long and narrow to show a whole film (a panorama or a cut-out "
        "strip). Take an ordinary photo with the whole film in the frame.",
        "这张图片过于狭长（全景照片或截取的长条），无法显示整张胶片。请用普通拍照模式拍摄，"
        "使整张胶片位于画面内。",
    ),
    "photo.not_radiograph": (
        "This photo does not show an X-ray film. Photograph the printed film on a lit lightbox.",
        "这张照片中没有X线胶片。请将打印的胶片放在亮着的观片灯上拍摄。",
    ),
    "photo.moire": (
        "Wavy stripes show that a screen was photographed. Photograph the printed film on a "
        "lightbox, or send the image file exported from the X-ray unit.",
        "照片中出现波纹条纹，说明拍摄的是屏幕。请拍摄放在观片灯上的打印胶片，"
        "或直接发送X线设备导出的图像文件。",
    ),
    "photo.overexposed": (
        "The photo is too bright: parts of the film are pure white. Tap the brightest part "
        "of the film on the phone screen (or lower the exposure) and take the photo again.",
        "照片过亮，胶片部分区域一片白。请在手机屏幕上点击胶片最亮的部位（或调低曝光），"
        "然后重新拍摄。",
    ),
    "photo.blurred": (
        "The photo is blurred. Hold the phone still with both hands or rest it on something, "
        "wait for it to focus, and take the photo again.",
        "照片模糊。请双手持稳手机或将手机靠在物体上，等待对焦后重新拍摄。",
    ),
    "photo.perspective_steep": (
        "The phone was held at a steep angle to the film. Hold the phone parallel to the "
        "film, straight in front of its centre, and take the photo again.",
        "手机与胶片的角度过斜。请将手机与胶片保持平行，正对胶片中央，然后重新拍摄。",
    ),
    "photo.film_too_small": (
        "The film fills too little of the photo. Move closer so that the film fills the "
        "frame, with its four corners still visible, and take the photo again.",
        "胶片在照片中所占面积太小。请靠近拍摄，使胶片充满画面并保留四个角，然后重新拍摄。",
    ),
}

for _place, (_english, _chinese) in _PLACES.items():
    PHOTO_CATALOGUE[f"photo.glare_{_place}"] = (
        f"A reflection covers the film at the {_english}. Tilt the phone a little or move "
        "sideways until the reflection leaves the film (or switch off the light above), and "
        "take the photo again.",
        f"胶片{_chinese}有反光，遮挡了影像。请稍微倾斜手机或向旁边移动，直到反光离开胶片"
        "（或关掉上方的灯），然后重新拍摄。",
    )

# Short names for lists inside evidence (edgeosteo.messages.QUALITY_SHORT_ZH).
PHOTO_SHORT_ZH: dict[str, str] = {
    "photo.not_a_photo": "DICOM文件，不是照片",
    "photo.no_film_found": "未找到胶片边缘",
    "photo.bad_corners": "标记的四个角有误",
    "photo.too_narrow": "图片过于狭长",
    "photo.not_radiograph": "照片中没有X线胶片",
    "photo.moire": "屏幕波纹",
    "photo.overexposed": "照片过亮",
    "photo.blurred": "照片模糊",
    "photo.perspective_steep": "拍摄角度过斜",
    "photo.film_too_small": "胶片在照片中太小",
    **{f"photo.glare_{place}": f"胶片{chinese}反光" for place, (_, chinese) in _PLACES.items()},
}
