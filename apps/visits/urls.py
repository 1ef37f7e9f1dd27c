from django.urls import path

from apps.visits import api

app_name = "visits"

urlpatterns = [
    path("location/", api.VisitLocationApi.as_view(), name="visit-location"),
    path("blocks/", api.VisitBlockListApi.as_view(), name="blocks"),
    path("blocks/<int:pk>/lift/", api.VisitBlockLiftApi.as_view(), name="block-lift"),
]
