"""Staff API over customer data. Personal numbers only ever leave masked."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import generics, serializers

from apps.common.api import require_permission
from apps.customers.models import Account, Customer
from apps.customers.selectors import customers_visible_to


class CustomerListApi(generics.ListAPIView):
    permission_classes = (require_permission("customers.view_customer"),)

    class OutputSerializer(serializers.ModelSerializer):
        id_number = serializers.CharField(source="id_number_masked", read_only=True)
        mobile = serializers.CharField(source="mobile_masked", read_only=True)
        home_branch = serializers.CharField(source="home_branch.code", read_only=True)

        class Meta:
            model = Customer
            fields: tuple[str, ...] = ("id", "customer_number", "name", "id_number", "mobile", "level", "home_branch")

    serializer_class = OutputSerializer

    def get_queryset(self) -> QuerySet[Customer]:
        return customers_visible_to(user=self.request.user)


class CustomerDetailApi(generics.RetrieveAPIView):
    permission_classes = (require_permission("customers.view_customer"),)

    class AccountSerializer(serializers.ModelSerializer):
        number = serializers.CharField(source="number_masked", read_only=True)

        class Meta:
            model = Account
            fields = ("id", "number", "kind", "status", "status_since", "opened_on")

    class OutputSerializer(CustomerListApi.OutputSerializer):
        accounts = serializers.SerializerMethodField()

        class Meta(CustomerListApi.OutputSerializer.Meta):
            fields = (*CustomerListApi.OutputSerializer.Meta.fields, "accounts")

        def get_accounts(self, obj: Customer) -> list[dict[str, object]]:
            return CustomerDetailApi.AccountSerializer(obj.accounts.order_by("number"), many=True).data  # type: ignore[return-value]

    serializer_class = OutputSerializer

    def get_queryset(self) -> QuerySet[Customer]:
        return customers_visible_to(user=self.request.user).prefetch_related("accounts")
