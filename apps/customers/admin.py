"""Customer data in the back office: read-only, numbers always masked."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from apps.common.admin import ReadOnlyAdmin
from apps.common.masking import mask_account_number, mask_id_number
from apps.customers.models import Account, BlacklistEntry, Branch, Customer
from apps.customers.selectors import customers_visible_to


@admin.register(Branch)
class BranchAdmin(ReadOnlyAdmin):
    list_display = ("code", "name", "city")
    search_fields = ("code", "name", "city")


class AccountInline(admin.TabularInline):
    model = Account
    fields = ("number_masked", "kind", "status", "status_since", "opening_branch")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    @admin.display(description=_("account number"))
    def number_masked(self, obj: Account) -> str:
        return obj.number_masked

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    list_display = ("customer_number", "name", "id_number_display", "mobile_display", "level", "home_branch")
    list_filter = ("level", "home_branch")
    # Searching by ID or mobile number would need the blind index; names and
    # customer numbers are enough for the back office.
    search_fields = ("customer_number", "name")
    fields = ("customer_number", "name", "id_number_display", "mobile_display", "level", "home_branch", "created_at")
    readonly_fields = fields
    inlines = (AccountInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        # The same rule as the API: only customers of one's own (or team's) recent services.
        return customers_visible_to(user=request.user)

    @admin.display(description=_("ID number"))
    def id_number_display(self, obj: Customer) -> str:
        return obj.id_number_masked

    @admin.display(description=_("mobile number"))
    def mobile_display(self, obj: Customer) -> str:
        return obj.mobile_masked


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("number_display", "kind", "status", "owner", "opening_branch", "status_since")
    list_filter = ("kind", "status", "opening_branch")
    search_fields = ("owner__customer_number", "owner__name")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        return super().get_queryset(request).filter(owner__in=customers_visible_to(user=request.user).values("pk"))

    fields = (
        "number_display",
        "kind",
        "status",
        "status_since",
        "owner",
        "opening_branch",
        "opened_on",
        "company_name",
    )
    readonly_fields = fields

    @admin.display(description=_("account number"))
    def number_display(self, obj: Account) -> str:
        return obj.number_masked


@admin.register(BlacklistEntry)
class BlacklistEntryAdmin(ReadOnlyAdmin):
    list_display = ("kind", "id_number_display", "account_number_display", "source", "listed_since", "active")
    list_filter = ("kind", "active")
    fields = ("kind", "id_number_display", "account_number_display", "source", "listed_since", "reason", "active")
    readonly_fields = fields

    @admin.display(description=_("ID number"))
    def id_number_display(self, obj: BlacklistEntry) -> str:
        return mask_id_number(obj.id_number)

    @admin.display(description=_("account number"))
    def account_number_display(self, obj: BlacklistEntry) -> str:
        return mask_account_number(obj.account_number)
