from __future__ import annotations

from django.urls import path

from apps.customers.api import CustomerDetailApi, CustomerListApi

app_name = "customers"

urlpatterns = [
    path("", CustomerListApi.as_view(), name="customer-list"),
    path("<int:pk>/", CustomerDetailApi.as_view(), name="customer-detail"),
]
