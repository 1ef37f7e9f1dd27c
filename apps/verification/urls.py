from __future__ import annotations

from django.urls import path

from apps.verification import api, views

app_name = "verification"

urlpatterns = [
    path("businesses/", api.BusinessListApi.as_view(), name="business-list"),
    path("", api.VisitStartApi.as_view(), name="visit-start"),
    path("current/", api.VisitCurrentApi.as_view(), name="visit-current"),
    path("current/id-card/", api.VisitIdCardApi.as_view(), name="visit-id-card"),
    path("current/id-card/retake/", api.VisitIdCardRetakeApi.as_view(), name="visit-id-card-retake"),
    path("current/identity/confirm/", api.VisitIdentityConfirmApi.as_view(), name="visit-identity-confirm"),
    path("current/account/photo/", api.VisitAccountPhotoApi.as_view(), name="visit-account-photo"),
    path("current/account/", api.VisitAccountApi.as_view(), name="visit-account"),
    path("current/mobile/code/", api.VisitSmsSendApi.as_view(), name="visit-sms-send"),
    path("current/mobile/verify/", api.VisitSmsVerifyApi.as_view(), name="visit-sms-verify"),
    path("dev/sms/", views.sms_sandbox_page, name="sms-sandbox"),
]
