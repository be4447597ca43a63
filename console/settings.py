"""Settings: every knob comes from the environment (django-environ).

With nothing set, the console runs on the embedded default: SQLite for Django, kombu's
SQLAlchemy transport on its own SQLite file as the Celery broker, and keys generated on
first run into the git-ignored state directory. `DATABASE_URL` and `CELERY_BROKER_URL`
switch to PostgreSQL and Redis/RabbitMQ; `CONSOLE_PRODUCTION=1` turns on the hardened
production mode (see docs/operations.md).
"""

import os
import tempfile
from datetime import timedelta
from pathlib import Path

import environ

from console.broker import transport_options as broker_transport_options
from console.local_state import ensure_local_encryption_keys, ensure_local_secret, restrict_local_state

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

STATE_DIR = Path(env.str("CONSOLE_STATE_DIR", default=str(BASE_DIR / "var")))
PRODUCTION = env.bool("CONSOLE_PRODUCTION", default=False)
DEBUG = env.bool("DJANGO_DEBUG", default=not PRODUCTION)

if not PRODUCTION:
    # The embedded default keeps its database, broker and keys here: owner-only.
    restrict_local_state(STATE_DIR)

if PRODUCTION:
    # Production never invents keys: a lost key would make stored credentials unreadable.
    missing = [
        name
        for name in ("DJANGO_SECRET_KEY", "CONSOLE_ENCRYPTION_KEYS")
        if not env.str(name, default="").strip()
    ]
    if missing:
        # One line naming what to set, not a traceback, from manage.py, gunicorn and celery alike.
        raise SystemExit(
            f"Configuration error: Production mode (CONSOLE_PRODUCTION=1) needs {' and '.join(missing)} "
            "set in the environment; see 'Credentials and keys' in README.md."
        )
    SECRET_KEY = env.str("DJANGO_SECRET_KEY").strip()
    CONSOLE_ENCRYPTION_KEYS = [key.strip() for key in env.list("CONSOLE_ENCRYPTION_KEYS") if key.strip()]
else:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or ensure_local_secret(STATE_DIR)
    CONSOLE_ENCRYPTION_KEYS = env.list("CONSOLE_ENCRYPTION_KEYS", default=[]) or (
        ensure_local_encryption_keys(STATE_DIR)
    )

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=[] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"]
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "crispy_forms",
    "crispy_bootstrap5",
    "axes",
    "providers",
    "tickets",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

if PRODUCTION:
    # gunicorn serves the collected static files itself (runserver does it in development).
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{STATE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat write concurrently: WAL lets readers run beside the writer,
    # IMMEDIATE takes the write lock at BEGIN (no deadlock-prone lock upgrades), and the
    # busy timeout makes a writer wait for the lock instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=30),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {
        # A file, not :memory:, so worker processes started by the tests see the same data.
        # One per test run (pid), so two runs on one machine never share a test database.
        "NAME": env.str(
            "TEST_SQLITE_PATH",
            default=str(Path(tempfile.gettempdir()) / f"ticket-console-test-{os.getpid()}.sqlite3"),
        ),
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]  # vendored Bootstrap CSS and the UI's own files
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(STATE_DIR / "media")))
MEDIA_URL = "media/"
# Attachments and exports are served through the console's views, never by a web server:
# owner-only (octal modes, e.g. 640 / 750 when another user must read them).
FILE_UPLOAD_PERMISSIONS = int(env.str("FILE_UPLOAD_PERMISSIONS", default="600"), 8)
FILE_UPLOAD_DIRECTORY_PERMISSIONS = int(env.str("FILE_UPLOAD_DIRECTORY_PERMISSIONS", default="700"), 8)
#: Largest file a ticket may carry (bytes); providers may refuse smaller ones.
ATTACHMENT_MAX_BYTES = env.int("ATTACHMENT_MAX_BYTES", default=10 * 1024 * 1024)
#: A filtered or searched ticket list (staff list and admin) counts at most this many matches,
#: then says "more than N": an exact count would read every match (tickets/paging.py).
TICKET_LIST_COUNT_CAP = env.int("TICKET_LIST_COUNT_CAP", default=1000)

# --- sign-in throttling (django-axes): the staff UI's and the admin's sign-in alike ---------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out username + address first
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
# Failed attempts, per username from one address, before that pair is locked out.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "console.lockout.lockout_response"
# Its start-up banner and per-attempt INFO lines would be logged by every command and process.
AXES_VERBOSE = False
# The address is REMOTE_ADDR (django-ipware is not installed): behind a proxy every sign-in
# shares the proxy's address, so the lock-out then falls on the username alone.

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "tickets:list"
LOGOUT_REDIRECT_URL = "login"
CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- production hardening (manage.py check --deploy is clean with CONSOLE_PRODUCTION=1) ---
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
# Error pages (DEBUG too) and error mails never show typed credentials or passwords.
DEFAULT_EXCEPTION_REPORTER_FILTER = "console.error_reports.CredentialHidingFilter"
X_FRAME_OPTIONS = "DENY"

# --- Celery ------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=f"sqla+sqlite:///{STATE_DIR / 'broker.sqlite3'}")
# At-least-once delivery: a message is acknowledged only after its task ran, and a task
# whose worker died is handed back to the broker. Duplicates are harmless because workers
# claim rows with a guarded UPDATE (tickets/sync.py).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "console"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# DEBUG's SQL query log in worker processes (console/worker_query_log.py): off unless asked for.
WORKER_QUERY_LOG = env.bool("CONSOLE_WORKER_QUERY_LOG", default=False)
# Task time limits stay well below the broker's visibility timeout, so a slow task is
# killed before Redis would hand its message to a second worker (RabbitMQ's counterpart, its
# consumer_timeout, is 30 minutes by default).
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=120)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=180)
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL)

# Celery's Django fixup closes the database connection around every task unless this is set:
# keeping it for 100 tasks made pushes 1.4x faster (docs/benchmarks.md, "Sync throughput").
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=100)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# When the broker connection drops (a RabbitMQ or Redis restart), tasks already running finish
# their provider call and record its outcome; their ack is lost with the connection, so the
# message comes again and the guarded claim turns it into a no-op. Cancelling them instead
# (Celery 6's planned default) would abandon calls mid-flight, leaving creates of unknown
# outcome for a person. Celery still warns about the default on every connection loss.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# After such a reconnect, Celery (5.3+) narrows the prefetch window by the tasks still running,
# then widens it again as tasks end, to min(maximum, window + 1): that overwrites the room the
# window had made for each countdown message the worker holds (a retry or a due-again nudge).
# With held countdowns filling the window, the worker takes no new message until they are due:
# a CI run's worker on RabbitMQ took nothing for two minutes after a restart (2026-12-07), and
# three tests timed out. Off, the window is whole at reconnect and countdowns keep their room.
CELERY_WORKER_ENABLE_PREFETCH_COUNT_REDUCTION = False
CELERY_WORKER_MAX_TASKS_PER_CHILD = env.int("CELERY_WORKER_MAX_TASKS_PER_CHILD", default=5000)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's own beat scheduler reads the schedule below; it keeps only each entry's last run
# time, in a file in the state directory (var/ by default), so `celery -A console beat` run
# from any directory finds the same file.
CELERY_BEAT_SCHEDULE_FILENAME = str(STATE_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "sweep-sync-queue": {
        "task": "tickets.tasks.sweep_sync_queue",
        "schedule": env.float("SYNC_SWEEP_INTERVAL", default=15.0),
    },
    "republish-stale-bulk-jobs": {
        "task": "tickets.tasks.republish_stale_bulk_jobs",
        "schedule": 60.0,
    },
    "purge-delivered-broker-messages": {
        "task": "tickets.tasks.purge_embedded_broker",
        "schedule": 3600.0,
    },
    "pull-remote-state": {
        "task": "tickets.tasks.pull_remote_state",
        "schedule": env.float("SYNC_PULL_INTERVAL", default=300.0),
    },
    "purge-old-records": {
        "task": "tickets.tasks.purge_old_records",
        "schedule": 86400.0,
    },
}

# --- sync engine -------------------------------------------------------------------------
SYNC_MAX_ATTEMPTS = env.int("SYNC_MAX_ATTEMPTS", default=8)
SYNC_BACKOFF_BASE = env.float("SYNC_BACKOFF_BASE", default=2.0)
SYNC_BACKOFF_CAP = env.float("SYNC_BACKOFF_CAP", default=900.0)
# The lease on a row being sent: its worker renews it every third of this while the call is in
# flight, so a row whose lease ran out belongs to a dead worker and the sweeper takes it back.
SYNC_LEASE = env.int("SYNC_LEASE", default=30)
# A push nudge names an account: its worker sends up to SYNC_MAX_IN_FLIGHT of the account's
# rows at once (an account's settings may lower or raise it: max_in_flight), claiming rows as
# threads come free, for up to SYNC_BATCH_BUDGET seconds before it nudges the account again.
# 16: why, with the figures and the database connections it may take, in docs/benchmarks.md.
SYNC_MAX_IN_FLIGHT = env.int("SYNC_MAX_IN_FLIGHT", default=16)
SYNC_BATCH_BUDGET = env.float("SYNC_BATCH_BUDGET", default=60.0)
# After an update whose answer never came (a timeout, a dropped connection), the provider
# may still be working on it. The next send of that ticket waits at least this long, so the
# late request cannot land after a newer one and leave the remote holding older state.
SYNC_UPDATE_SETTLE = env.float("SYNC_UPDATE_SETTLE", default=60.0)
# A pending row whose message was published this long ago without being claimed is
# re-published by the sweeper (the message may have been lost).
SYNC_REQUEUE_AFTER = env.int("SYNC_REQUEUE_AFTER", default=60)
# Per-account circuit breaker (an account's settings may override both: breaker_threshold,
# breaker_cooldown) and the longest a worker sleeps for a rate-limit slot before it puts the
# work back for later.
SYNC_BREAKER_THRESHOLD = env.int("SYNC_BREAKER_THRESHOLD", default=5)
SYNC_BREAKER_COOLDOWN = env.float("SYNC_BREAKER_COOLDOWN", default=60.0)
SYNC_RATE_MAX_WAIT = env.float("SYNC_RATE_MAX_WAIT", default=10.0)
# Pull: how many fetch calls of one account run at once, and how many tickets one run reads.
SYNC_PULL_CONCURRENCY = env.int("SYNC_PULL_CONCURRENCY", default=4)
SYNC_PULL_LIMIT = env.int("SYNC_PULL_LIMIT", default=1000)
SYNC_PULL_TIME_BUDGET = env.float("SYNC_PULL_TIME_BUDGET", default=60.0)
# Retention in days (tickets/retention.py, purged daily by beat); 0 keeps that kind forever.
# The newest attempt of each ticket and unfinished jobs always stay.
SYNC_ATTEMPT_RETENTION_DAYS = env.int("SYNC_ATTEMPT_RETENTION_DAYS", default=90)
INBOUND_EVENT_RETENTION_DAYS = env.int("INBOUND_EVENT_RETENTION_DAYS", default=90)
BULK_JOB_RETENTION_DAYS = env.int("BULK_JOB_RETENTION_DAYS", default=30)
# Inbound callbacks (Knight's callbackAddress): larger bodies are refused with 413.
INBOUND_MAX_BYTES = env.int("INBOUND_MAX_BYTES", default=64 * 1024)
# After "Rotate callback secret", the previous secret is still accepted this many seconds:
# Knight tickets keep the callback address they were created with.
INBOUND_SECRET_GRACE = env.int("INBOUND_SECRET_GRACE", default=24 * 3600)
PROVIDER_USER_AGENT = env.str("PROVIDER_USER_AGENT", default="TicketConsole/0.1 (+sync)")
# Provider base URLs must reach public addresses (providers/egress.py); these hosts ("host"
# on any port, "host:port" on that port) may be private: a provider on your own network.
PROVIDER_PRIVATE_HOSTS = env.list("PROVIDER_PRIVATE_HOSTS", default=[])
# Provider kinds beyond the built-in ones (providers/registry.py), one line each:
# {"kind": ("dotted.path.ProviderClass", "dotted.path.EmulatorClass")} (None: no sandbox
# emulator). The test settings (console/test_settings.py) register a test-only provider here.
EXTRA_PROVIDERS: dict[str, tuple[str, str | None]] = {}

# Mail: provider admins are e-mailed when an account needs them (tickets/problems.py).
# Embedded default: printed to the console; production: SMTP to EMAIL_HOST (EMAIL_* below).
EMAIL_BACKEND_PATH = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.{}.EmailBackend".format("smtp" if PRODUCTION else "console"),
)
MAILERS = {"default": {"BACKEND": EMAIL_BACKEND_PATH}}
if EMAIL_BACKEND_PATH.endswith(".smtp.EmailBackend"):
    MAILERS["default"]["OPTIONS"] = {
        "host": env.str("EMAIL_HOST", default="localhost"),
        "port": env.int("EMAIL_PORT", default=25),
        "username": env.str("EMAIL_HOST_USER", default=""),
        "password": env.str("EMAIL_HOST_PASSWORD", default=""),
        "use_tls": env.bool("EMAIL_USE_TLS", default=False),
    }
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="ticket-console@localhost")
# Where the console is reached, for links in those e-mails.
CONSOLE_PUBLIC_URL = env.str("CONSOLE_PUBLIC_URL", default="http://127.0.0.1:8000")

# --- operations: probes and metrics (console/health.py, console/metrics.py) ----------------
# The probes are answered ahead of every other middleware: orchestrators probe by IP address
# over plain HTTP, which the host check and the SSL redirect would turn away.
MIDDLEWARE.insert(0, "console.health.ProbeMiddleware")
# Every response carries an X-Request-ID, every log line its id (console/request_id.py).
MIDDLEWARE.insert(0, "console.request_id.RequestIdMiddleware")
#: Seconds /readyz gives the database and the broker to answer (checked at once).
READINESS_TIMEOUT = env.float("READINESS_TIMEOUT", default=2.0)
#: Bearer token /metrics wants; unset, /metrics answers 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
#: Seconds of sync calls the call-outcome and latency metrics count.
METRICS_WINDOW = env.int("METRICS_WINDOW", default=300)
#: `json`: every log line one JSON object (time, level, logger, message, request_id).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
# --- end of operations ---------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "console.request_id.JsonFormatter"},
    },
    "filters": {
        "request_id": {"()": "console.request_id.RequestIdFilter"},
        "one_line_client_errors": {"()": "console.log_filters.OneLineClientErrors"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["request_id", "one_line_client_errors"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # "django": without Django's own DEBUG-only handler, which would print every refused
    # request's traceback before ours; everything goes through the one filtered handler.
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
    },
}
