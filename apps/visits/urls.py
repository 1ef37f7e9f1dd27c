from django.urls import path

from apps.visits import api

app_name = "visits"

urlpatterns = [
    path("location/", api.VisitLocationApi.as_view(), name="visit-location"),
]
