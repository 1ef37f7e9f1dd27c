"""``manage.py break_glass grant|revoke``: the only way to make someone a superuser (docs/security.md).

    manage.py break_glass grant USER --requested-by A --approved-by B --reason "..." --minutes 60
    manage.py break_glass revoke USER --by A

Two different named staff members request and approve; the grant expires by
itself (housekeeping sweeper) and every step is in the audit trail.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.common.errors import ApplicationError
from apps.staff.services import elevation_grant, elevation_revoke


def _user(username: str) -> User:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user named {username!r}.")
    return user


class Command(BaseCommand):
    help = "Grant (two named people, a reason, an expiry) or revoke temporary superuser rights."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        grant = actions.add_parser("grant", help="make USER a superuser until the grant expires")
        grant.add_argument("username")
        grant.add_argument("--requested-by", required=True, help="username of the staff member asking")
        grant.add_argument("--approved-by", required=True, help="username of a second staff member approving")
        grant.add_argument("--reason", required=True, help="why, in a full sentence (kept in the audit trail)")
        grant.add_argument("--minutes", type=int, required=True, help="how long the rights last")
        revoke = actions.add_parser("revoke", help="end USER's running grants now")
        revoke.add_argument("username")
        revoke.add_argument("--by", required=True, help="username of the staff member ending them")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "grant":
                grant = elevation_grant(
                    user=_user(options["username"]),
                    requested_by=_user(options["requested_by"]),
                    approved_by=_user(options["approved_by"]),
                    reason=options["reason"],
                    minutes=options["minutes"],
                )
                self.stdout.write(f"{options['username']} is a superuser until {grant.expires_at.isoformat()}.")
            else:
                ended = elevation_revoke(actor=_user(options["by"]), user=_user(options["username"]))
                self.stdout.write(f"{ended} grant(s) of {options['username']} ended.")
        except ApplicationError as exc:
            raise CommandError(str(exc.message)) from exc
