from django.urls import path

from integrations import views, webhook_views

app_name = "integrations"
urlpatterns = [
    path("quickbooks/callback/", views.oauth_callback, name="qbo_callback"),
    path("quickbooks/disconnected/", views.intuit_disconnected, name="qbo_disconnected"),
    path("quickbooks/webhooks/", webhook_views.quickbooks_webhook, name="qbo_webhook"),
]
