from __future__ import annotations

from django.urls import path

from apps.security import views

app_name = "security"

urlpatterns = [
    path("enrol/", views.enrol, name="enrol"),
    path("verify/", views.verify, name="verify"),
    path("recovery-codes/", views.recovery_codes, name="recovery-codes"),
    path("home/", views.home, name="home"),
]
