from __future__ import annotations

from django.urls import path

from apps.calls import api

app_name = "calls"

urlpatterns = [
    path("current/", api.CustomerCallApi.as_view(), name="customer-call"),
    path("current/hang-up/", api.CustomerCallHangUpApi.as_view(), name="customer-call-hang-up"),
    path("mine/", api.StaffMyCallApi.as_view(), name="staff-my-call"),
    path("janus-events/", api.JanusEventsApi.as_view(), name="janus-events"),
    path("<uuid:public_id>/", api.StaffCallApi.as_view(), name="staff-call"),
    path("<uuid:public_id>/hang-up/", api.StaffCallHangUpApi.as_view(), name="staff-call-hang-up"),
    path("<uuid:public_id>/invite/", api.CallInviteApi.as_view(), name="invite"),
    path("<uuid:public_id>/transfer/", api.CallTransferApi.as_view(), name="transfer"),
    path("<uuid:public_id>/supervise/", api.CallSuperviseApi.as_view(), name="supervise"),
    path("<uuid:public_id>/supervise/leave/", api.CallSuperviseLeaveApi.as_view(), name="supervise-leave"),
]
