from __future__ import annotations

from django.urls import path

from apps.operations import api

app_name = "operations"

urlpatterns = [
    path("calls/<uuid:public_id>/", api.CallOperationsApi.as_view(), name="call-operations"),
    path("calls/<uuid:public_id>/start/", api.CallOperationStartApi.as_view(), name="call-operation-start"),
    path("<uuid:operation_id>/confirm/", api.OperationConfirmApi.as_view(), name="operation-confirm"),
    path("<uuid:operation_id>/cancel/", api.OperationCancelApi.as_view(), name="operation-cancel"),
    path("<uuid:operation_id>/certificate/", api.OperationCertificateApi.as_view(), name="operation-certificate"),
    path("visit/", api.VisitOperationApi.as_view(), name="visit-operation"),
    path("visit/<uuid:operation_id>/pin/", api.VisitOperationPinApi.as_view(), name="visit-operation-pin"),
    path("visit/<uuid:operation_id>/confirm/", api.VisitOperationConfirmApi.as_view(), name="visit-operation-confirm"),
    path("visit/<uuid:operation_id>/intent/", api.VisitOperationIntentApi.as_view(), name="visit-operation-intent"),
]
