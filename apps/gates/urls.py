from __future__ import annotations

from django.urls import path

from apps.gates import api

app_name = "gates"

urlpatterns = [
    path("calls/<uuid:public_id>/", api.CallGatesApi.as_view(), name="call-gates"),
    path("calls/<uuid:public_id>/identity/", api.GateIdentityApi.as_view(), name="call-gate-identity"),
    path("calls/<uuid:public_id>/face/", api.GateFaceApi.as_view(), name="call-gate-face"),
    path("calls/<uuid:public_id>/questions/", api.GateQuestionsApi.as_view(), name="call-gate-questions"),
    path("calls/<uuid:public_id>/registry-photo/", api.GateRegistryPhotoApi.as_view(), name="call-registry-photo"),
    path("calls/<uuid:public_id>/id-portrait/", api.GateIdPortraitApi.as_view(), name="call-id-portrait"),
    path("visit/", api.VisitGatesApi.as_view(), name="visit-gates"),
    path("visit/answers/", api.VisitGateAnswersApi.as_view(), name="visit-gate-answers"),
]
