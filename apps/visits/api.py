"""Customer endpoints of the visit itself (the visit's other steps live with Gate 1, the queue and the call)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.visits.authentication import CustomerApi, request_visit
from apps.visits.models import LocationConsent
from apps.visits.services import visit_location_record


def client_ip(request: Request) -> str:
    """The address the request came from, as the server's own network saw it."""
    return str(request.META.get("REMOTE_ADDR", "") or "")


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
            client_ip=client_ip(request),
            latitude=data.validated_data.get("latitude"),
            longitude=data.validated_data.get("longitude"),
            accuracy_m=data.validated_data.get("accuracy"),
        )
        return Response(LocationOutputSerializer(location).data, status=status.HTTP_201_CREATED)
