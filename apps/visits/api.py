"""Blocks of remote service after a failed identity or face check (issue 14): supervisors see and lift them."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.api import request_staff_user, require_permission
from apps.common.masking import mask_mobile, mask_name
from apps.visits.models import VisitBlock
from apps.visits.selectors import visit_blocks_in_force
from apps.visits.services import visit_block_lift

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
