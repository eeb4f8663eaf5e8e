"""Wording of the account codes (``account.*``): what an administrator's action on a user did
or why it was refused, and why the API refuses an account, in English and Simplified Chinese.
``{name}`` is the user name the action was on."""

from __future__ import annotations

ACCOUNT_CATALOGUE: dict[str, tuple[str, str]] = {
    "account.password_reset": (
        "{name} has a new one-time password, shown below only this once. Give it to them in "
        "person; they choose their own password at the next login. Their open sessions have "
        "ended.",
        "已为 {name} 生成新的一次性密码，仅在下方显示这一次。请当面交给本人；下次登录时须设置自己的"
        "密码。该用户已打开的会话均已结束。",
    ),
    "account.unlocked": (
        "{name} is unlocked and can log in again now.",
        "已为 {name} 解除锁定，现在可以重新登录。",
    ),
    "account.disabled": (
        "{name} is disabled: they cannot log in, and their open sessions have ended. Their "
        "cases stay.",
        "已停用 {name}：该用户无法登录，已打开的会话均已结束。其筛查记录保留。",
    ),
    "account.enabled": (
        "{name} is enabled and can log in again.",
        "已启用 {name}，该用户可以重新登录。",
    ),
    "account.deleted": (
        "{name} is deleted. The cases they screened are kept, with their user name.",
        "已删除 {name}。该用户筛查过的记录保留，并仍显示其用户名。",
    ),
    "account.made_admin": (
        "{name} is now an administrator.",
        "{name} 现在是管理员。",
    ),
    "account.made_technician": (
        "{name} is now a technician.",
        "{name} 现在是技师。",
    ),
    "account.last_admin": (
        "Not done: {name} is the last enabled administrator, and the box needs one to manage "
        "users and settings. Make another user an administrator first.",
        "未执行：{name} 是最后一个可用的管理员，本设备必须保留一个管理员来管理用户和设置。"
        "请先将另一位用户设为管理员。",
    ),
    "account.not_yourself": (
        "Not done: you cannot disable, delete or demote your own account, or reset your own "
        "password here. Ask another administrator; change your own password on the Change "
        "password page.",
        "未执行：不能在这里停用、删除、降级自己的账户或重置自己的密码。请让另一位管理员操作；"
        "修改自己的密码请到“修改密码”页面。",
    ),
    "account.not_found": (
        "This user no longer exists (another administrator may have deleted them). The list "
        "below is up to date.",
        "该用户已不存在（可能已被另一位管理员删除）。下方列表为最新。",
    ),
    "account.role_invalid": (
        "Choose Administrator or Technician.",
        "请选择管理员或技师。",
    ),
    "account.password_change_due": (
        "This account has a one-time password. Log in on the box's page and choose your own "
        "password, then use the new one here.",
        "该账户使用的是一次性密码。请先在本设备网页上登录并设置自己的密码，然后在此使用新密码。",
    ),
}
