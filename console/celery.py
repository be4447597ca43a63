import os

from celery import Celery

from console import broker, request_id  # noqa: F401 - request_id connects the task signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

broker.register()
app = Celery("console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
