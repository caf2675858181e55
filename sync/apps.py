from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Sync"

    def ready(self) -> None:
        from sync import signals  # noqa: F401  (queues pushes on save)
