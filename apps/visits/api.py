"""Endpoints of the visit itself: where the customer is (their page), and blocks of remote service after a
failed identity or face check (issue 14), which supervisors see and lift."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import request_staff_user, require_permission
from apps.common.masking import mask_mobile, mask_name
from apps.common.network import client_address
from apps.visits.authentication import CustomerApi, request_visit
from apps.visits.models import LocationConsent, VisitBlock
from apps.visits.selectors import visit_blocks_in_force
from apps.visits.services import visit_block_lift, visit_location_record


class LocationInputSerializer(serializers.Serializer):
    consent = serializers.ChoiceField(choices=LocationConsent.choices)
    latitude = serializers.FloatField(required=False, allow_null=True)
    longitude = serializers.FloatField(required=False, allow_null=True)
    accuracy = serializers.FloatField(required=False, allow_null=True)


class LocationOutputSerializer(serializers.Serializer):
    consent = serializers.CharField()
    ip_country = serializers.CharField()


class VisitLocationApi(CustomerApi):
    """``POST``: what the customer's page learnt of their location (or that they refused to share it)."""

    @extend_schema(request=LocationInputSerializer, responses={201: LocationOutputSerializer})
    def post(self, request: Request) -> Response:
        data = LocationInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        location = visit_location_record(
            visit_id=request_visit(request).pk,
            consent=data.validated_data["consent"],
            # The client's address, trusting X-Forwarded-For only from our own proxies.
            client_ip=client_address(request),
            latitude=data.validated_data.get("latitude"),
            longitude=data.validated_data.get("longitude"),
            accuracy_m=data.validated_data.get("accuracy"),
        )
        return Response(LocationOutputSerializer(location).data, status=status.HTTP_201_CREATED)


_SUPERVISE = require_permission("queueing.supervise_queues")


class VisitBlockOutputSerializer(serializers.ModelSerializer[VisitBlock]):
    visit = serializers.UUIDField(source="visit.public_id")
    customer = serializers.SerializerMethodField()
    mobile = serializers.SerializerMethodField()

    class Meta:
        model = VisitBlock
        fields = ("id", "visit", "customer", "mobile", "reason", "created_at", "blocked_until", "lifted_at")

    def get_customer(self, block: VisitBlock) -> str | None:
        return mask_name(block.customer.name) if block.customer is not None else None

    def get_mobile(self, block: VisitBlock) -> str:
        return mask_mobile(block.visit.mobile)


class VisitBlockListApi(APIView):
    """``GET``: the blocks in force (not lifted, not expired), for supervisors."""

    permission_classes = (_SUPERVISE,)

    class OutputSerializer(serializers.Serializer[Any]):
        blocks = VisitBlockOutputSerializer(many=True)

    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer({"blocks": list(visit_blocks_in_force())}).data)


class VisitBlockLiftApi(APIView):
    """``POST {"reason": "..."}``: lift a block; audited with who and why."""

    permission_classes = (_SUPERVISE,)

    class InputSerializer(serializers.Serializer[Any]):
        reason = serializers.CharField(max_length=200)

    def post(self, request: Request, pk: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        block = visit_block_lift(actor=request_staff_user(request), block_id=pk, reason=data.validated_data["reason"])
        return Response(VisitBlockOutputSerializer(block).data)
