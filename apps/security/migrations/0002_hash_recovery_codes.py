"""Recovery codes issued before they were hashed: store their keyed hash instead of the code."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def hash_clear_codes(apps: Any, schema_editor: Any) -> None:
    from apps.security.services import recovery_code_hash

    StaticToken = apps.get_model("otp_static", "StaticToken")
    for token in StaticToken.objects.select_related("device").iterator():
        # Codes in clear are exactly ten digits; hashes are 16 hex characters.
        if len(token.token) == 10 and token.token.isdigit():
            token.token = recovery_code_hash(user_id=token.device.user_id, code=token.token)
            token.save(update_fields=["token"])


class Migration(migrations.Migration):
    dependencies = [
        ("security", "0001_login_throttle"),
        ("otp_static", "0003_add_timestamps"),
    ]

    operations = [migrations.RunPython(hash_clear_codes, migrations.RunPython.noop)]
