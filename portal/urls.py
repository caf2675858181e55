from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from portal import views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("integrations/", include("integrations.urls")),
]
