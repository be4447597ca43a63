import os

from celery import Celery

from console import broker, request_id, worker_query_log  # noqa: F401 - these two connect worker signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

broker.register()
app = Celery("console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
