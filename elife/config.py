"""Every setting the service, the sweep and the sandbox read, with its default.

Order of precedence: the process environment, then `.env` at the repo root, then the
defaults below. In development (the default) nothing needs configuring: the database
is a SQLite file and WeChat and Unitel are the sandbox on SANDBOX_PORT.
"""
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from dotenv import load_dotenv

from .validators import valid_register_no

REPO_ROOT = Path(__file__).resolve().parent.parent

# Production refuses to start while any of these is empty.
REQUIRED_IN_PRODUCTION = (
    "DATABASE_URL", "SECRET_KEY", "ADMIN_TOKEN",
    "WECHAT_APPID", "WECHAT_MCH_ID", "WECHAT_ENV_ID",
    "UNITEL_API_URL", "UNITEL_USERNAME", "UNITEL_PASSWORD",
)


# The sandbox's status query (elife/sandbox/app.py), relative to UNITEL_API_URL.
SANDBOX_STATUS_PATH = "/service/status"

# What development fills in when unset. Production refuses them, and any secret shorter
# than MIN_SECRET_LENGTH: a token signed offline with a key from the repo is a login.
DEV_SECRET_KEY = "dev-only-secret-key"
DEV_ADMIN_TOKEN = "dev-admin-token"
DEV_JOBS_TOKEN = "dev-jobs-token"
MIN_SECRET_LENGTH = 32
SECRETS = {"SECRET_KEY": DEV_SECRET_KEY, "ADMIN_TOKEN": DEV_ADMIN_TOKEN}
JOBS_SECRETS = {"JOBS_TOKEN": DEV_JOBS_TOKEN}  # required, and checked, while JOBS_ENABLED


# subscribeMessage.send's choices (developers.weixin.qq.com).
MESSAGE_APIS = ("cloud", "token")
MINIPROGRAM_STATES = ("developer", "trial", "formal")
MESSAGE_LANGS = ("zh_CN", "en_US", "zh_HK", "zh_TW")


class ConfigError(RuntimeError):
    pass


def _bool(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def normalize_database_url(url):
    """Accept the seed's Prisma-style `mysql://` URL and use the PyMySQL driver for it."""
    if url.startswith("mysql://"):
        url = "mysql+pymysql://" + url[len("mysql://"):]
    elif url.startswith("mariadb://"):
        url = "mysql+pymysql://" + url[len("mariadb://"):]
    if url.startswith("mysql+pymysql://") and "charset=" not in url:
        url += ("&" if "?" in url else "?") + "charset=utf8mb4"
    return url


def _setting(default, cast=str, doc=""):
    return field(default=default, metadata={"cast": cast, "doc": doc})


@dataclass
class Settings:
    ELIFE_ENV: str = _setting("development", doc="development | production")
    PORT: int = _setting(3000, int)
    SANDBOX_PORT: int = _setting(3001, int)
    SECRET_KEY: str = _setting("", doc="signs customer tokens; production: 32+ random characters")
    TOKEN_TTL_SECONDS: int = _setting(7 * 24 * 3600, int)
    ADMIN_TOKEN: str = _setting("", doc="production: 32+ random characters")
    LOG_LEVEL: str = _setting("info")
    LOG_DIR: str = _setting(str(REPO_ROOT / "logs"), doc="combined.log and error.log; - writes no files "
                                                          "(stdout only, as in the container)")
    LOG_FORMAT: str = _setting("text", doc="text (one line per event) | json (one object per line)")
    METRICS_TOKEN: str = _setting("", doc="Bearer token for GET /metrics; empty: ADMIN_TOKEN")
    METRICS_DIR: str = _setting(str(REPO_ROOT / "instance" / "metrics"),
                                doc="the workers' metric files and the sweep's last run, for /metrics")
    MAX_BODY_BYTES: int = _setting(64 * 1024, int)
    TRUSTED_PROXY_COUNT: int = _setting(0, int, "proxies in front of us whose X-Forwarded-For/-Proto "
                                                "we believe: 0 = the socket's peer is the client")

    DATABASE_URL: str = _setting("")
    DB_MAX_RETRIES: int = _setting(5, int)
    DB_RETRY_DELAY: int = _setting(5000, int, "milliseconds, as in the seed")
    DB_POOL_RECYCLE: int = _setting(280, int, "seconds; below the server's wait_timeout")
    DB_CONNECT_TIMEOUT: int = _setting(2, int)
    DB_MYSQL_BRANCH: bool = _setting(False, _bool, "on MariaDB, use only what MySQL 8.0 has (no RETURNING, "
                                                   "no sequences, MySQL 8.0's default sql_mode): how the "
                                                   "tests take the MySQL branch; nothing on MySQL or SQLite")

    WECHAT_API_BASE: str = _setting("")
    WECHAT_APPID: str = _setting("")
    WECHAT_SECRET: str = _setting("", doc="only for code2Session outside Cloud Hosting")
    WECHAT_MCH_ID: str = _setting("")
    WECHAT_ENV_ID: str = _setting("")
    WECHAT_SERVICE_NAME: str = _setting("elife-backend", doc="container that gets callbacks")
    WECHAT_TIMEOUT: float = _setting(1.0, float, "seconds; WeChat gives a callback 5 s in all")
    WECHAT_BILL_TIMEOUT: float = _setting(30.0, float, "seconds to read a day's bill (reconcile)")
    TRUST_WX_HEADERS: bool = _setting(False, _bool, "believe X-WX-OPENID (with X-WX-SOURCE): only when "
                                                    "nothing but Cloud Hosting can reach the service")
    REQUIRE_WX_SOURCE: bool = _setting(False, _bool, "accept WeChat's notices and the jobs only with the "
                                                     "platform's X-WX-SOURCE (Cloud Hosting sets it)")
    CBR_ENV_ID: str = _setting("", doc="set by Cloud Hosting in its containers (the environment's id), "
                                       "never by hand: inside Cloud Hosting the open API must answer with "
                                       "x-openapi-seqid")

    JOBS_ENABLED: bool = _setting(False, _bool, "POST /jobs/sweep, /jobs/reconcile, /jobs/purge for Cloud "
                                                "Hosting's timed triggers (a host runs them from cron)")
    JOBS_TOKEN: str = _setting("", doc="the Bearer token the triggers send to /jobs/*; production: 32+ "
                                       "random characters")
    JOB_TIME_BUDGET_SECONDS: int = _setting(45, int, "a job answers within this (Cloud Hosting ends a request "
                                                     "at 60 s); the sweep starts no row it could not finish "
                                                     "by then, and says \"more\": true")

    # Subscribe messages (elife/notify/): what the customer hears back.
    WECHAT_MESSAGE_API: str = _setting("cloud", doc="cloud: Cloud Hosting's open API, no access_token; "
                                                    "token: a host, access_token from stable_token "
                                                    "(WECHAT_APPID, WECHAT_SECRET)")
    NOTIFY_PAGE: str = _setting("", doc="the mini-program page a message opens, given ?orderNumber=<n>; "
                                        "empty: no page (a page missing from the live version is 41030)")
    NOTIFY_MINIPROGRAM_STATE: str = _setting("formal", doc="which version the page opens: "
                                                           "developer | trial | formal")
    NOTIFY_LANG: str = _setting("zh_CN", doc="the language of the message card: zh_CN | en_US | zh_HK | zh_TW")
    NOTIFY_MAX_ATTEMPTS: int = _setting(5, int, "sends of one message WeChat answered -1 or 5xx to, "
                                                "about an hour apart in all, before it is failed")
    NOTIFY_TIMEOUT: float = _setting(5.0, float, "seconds to wait for subscribeMessage.send "
                                                 "(it runs after the top-up, never in a request)")

    UNITEL_API_URL: str = _setting("")
    UNITEL_USERNAME: str = _setting("")
    UNITEL_PASSWORD: str = _setting("")
    UNITEL_CONNECT_TIMEOUT: float = _setting(1.0, float)
    UNITEL_READ_TIMEOUT: float = _setting(30.0, float, "seconds; the top-up runs after WeChat's answer")
    RECHARGE_THREADS: int = _setting(32, int, "per worker: top-ups running after WeChat's answer; "
                                               "0 runs each in its request's thread")
    BREAKER_FAILURES: int = _setting(5, int, "operator outages in a row that open the breaker")
    BREAKER_COOLDOWN_SECONDS: int = _setting(60, int, "how long the open breaker refuses orders")

    UNITEL_STATUS_PATH: str = _setting("", doc="where the operator's status query lives, or none "
                                               "(production default none; development: the sandbox's)")
    UNITEL_PRICE_CACHE_SECONDS: int = _setting(180, int, "how long a number's live package list is kept")
    UNITEL_PRICE_TIMEOUT: float = _setting(2.0, float, "seconds POST /orders waits for the live list")
    UNITEL_VAT_FLAG: str = _setting("1", doc="vatflag sent with a top-up: 1 asks for the e-barimt receipt")
    UNITEL_VAT_REGISTER_NO: str = _setting("", doc="vat_register_no sent when the order carries none")

    ORDER_TTL_SECONDS: int = _setting(7200, int, "an unpaid order expires (WeChat's prepay lives 2 h)")

    SWEEP_GRACE_SECONDS: int = _setting(60, int)
    SWEEP_STUCK_SECONDS: int = _setting(300, int)
    SWEEP_UNPAID_WINDOW_SECONDS: int = _setting(7200, int)
    SWEEP_BATCH: int = _setting(100, int)
    SWEEP_MAX_SECONDS: int = _setting(50, int)

    LIMIT_ORDERS_PER_MINUTE: int = _setting(10, int, "per user; 0 turns a limit off")
    LIMIT_ORDERS_PER_DAY: int = _setting(100, int)
    LIMIT_LOGINS_PER_MINUTE: int = _setting(30, int, "per client address")
    LIMIT_PAYMENTS_PER_ORDER_HOUR: int = _setting(20, int)
    LIMIT_ADMIN_FAILURES_PER_MINUTE: int = _setting(10, int, "wrong admin tokens per client address")
    LIMIT_NOTICES_PER_ORDER_PER_HOUR: int = _setting(30, int, "payment notices stored per order number")
    NOTICE_RETENTION_DAYS: int = _setting(180, int, "payment notices older than this are purged, "
                                                    "except those of flagged orders")

    SANDBOX_SERVICE_URL: str = _setting("", doc="where the sandbox delivers callbacks")
    SANDBOX_STATE_FILE: str = _setting("", doc="where the sandbox keeps its state across restarts")

    @property
    def is_production(self):
        return self.ELIFE_ENV == "production"

    def missing_required(self):
        names = REQUIRED_IN_PRODUCTION + (tuple(JOBS_SECRETS) if self.JOBS_ENABLED else ())
        return [name for name in names if not str(getattr(self, name)).strip()]

    def weak_secrets(self):
        """Sentences naming each secret that production must not run with."""
        out = []
        for name, dev_default in {**SECRETS, **(JOBS_SECRETS if self.JOBS_ENABLED else {})}.items():
            value = str(getattr(self, name))
            if not value.strip():
                continue  # named as missing instead
            if value == dev_default:
                out.append(f"{name} is the development default")
            elif len(value) < MIN_SECRET_LENGTH:
                out.append(f"{name} is shorter than {MIN_SECRET_LENGTH} characters")
        return out

    def validate(self):
        if self.ELIFE_ENV not in ("development", "production"):
            raise ConfigError(f"ELIFE_ENV must be development or production, not {self.ELIFE_ENV!r}")
        if self.LOG_FORMAT not in ("text", "json"):
            raise ConfigError(f"LOG_FORMAT must be text or json, not {self.LOG_FORMAT!r}")
        if self.TRUSTED_PROXY_COUNT < 0:
            raise ConfigError("TRUSTED_PROXY_COUNT must be 0 or more")
        if self.JOBS_ENABLED and self.JOB_TIME_BUDGET_SECONDS <= self.UNITEL_CONNECT_TIMEOUT + self.UNITEL_READ_TIMEOUT:
            # The sweep starts a row only while the operator's whole wait still fits.
            raise ConfigError(f"JOB_TIME_BUDGET_SECONDS ({self.JOB_TIME_BUDGET_SECONDS}) must exceed the "
                              f"operator's connect and read timeouts "
                              f"({self.UNITEL_CONNECT_TIMEOUT + self.UNITEL_READ_TIMEOUT:g} s)")
        if self.NOTICE_RETENTION_DAYS < 1:
            raise ConfigError("NOTICE_RETENTION_DAYS must be 1 or more")
        if self.is_production:
            problems = []
            missing = self.missing_required()
            if missing:
                problems.append("missing required settings: " + ", ".join(missing))
            problems += self.weak_secrets()
            if problems:
                raise ConfigError("; ".join(problems))
        if self.UNITEL_STATUS_PATH != "none" and not self.UNITEL_STATUS_PATH.startswith("/"):
            raise ConfigError(f"UNITEL_STATUS_PATH must be none or a path starting with /, "
                              f"not {self.UNITEL_STATUS_PATH!r}")
        if self.UNITEL_VAT_FLAG not in ("0", "1"):
            raise ConfigError(f"UNITEL_VAT_FLAG must be 0 or 1, not {self.UNITEL_VAT_FLAG!r}")
        if self.UNITEL_VAT_REGISTER_NO and not valid_register_no(self.UNITEL_VAT_REGISTER_NO):
            raise ConfigError("UNITEL_VAT_REGISTER_NO must be a 7-digit company register number "
                              "or 2 Cyrillic letters and 8 digits")
        if self.WECHAT_MESSAGE_API not in MESSAGE_APIS:
            raise ConfigError(f"WECHAT_MESSAGE_API must be cloud or token, not {self.WECHAT_MESSAGE_API!r}")
        if self.NOTIFY_MINIPROGRAM_STATE not in MINIPROGRAM_STATES:
            raise ConfigError(f"NOTIFY_MINIPROGRAM_STATE must be one of {', '.join(MINIPROGRAM_STATES)}")
        if self.NOTIFY_LANG not in MESSAGE_LANGS:
            raise ConfigError(f"NOTIFY_LANG must be one of {', '.join(MESSAGE_LANGS)}")
        if self.NOTIFY_MAX_ATTEMPTS < 1 or self.NOTIFY_TIMEOUT <= 0:
            raise ConfigError("NOTIFY_MAX_ATTEMPTS must be 1 or more and NOTIFY_TIMEOUT above 0")
        if self.is_production and self.WECHAT_MESSAGE_API == "token" and not self.WECHAT_SECRET.strip():
            raise ConfigError("WECHAT_MESSAGE_API=token needs WECHAT_SECRET (stable_token asks for it)")
        if self.UNITEL_PRICE_TIMEOUT <= 0 or self.UNITEL_PRICE_CACHE_SECONDS < 0:
            raise ConfigError("UNITEL_PRICE_TIMEOUT must be above 0 and UNITEL_PRICE_CACHE_SECONDS not negative")
        return self


def current():
    """The running app's settings (create_app keeps them in app.config["SETTINGS"])."""
    from flask import current_app
    return current_app.config["SETTINGS"]


def load_settings(overrides=None, environ=None, dotenv_path=None):
    """Build Settings from overrides, the environment, `.env` and the defaults."""
    if environ is None:
        load_dotenv(dotenv_path or REPO_ROOT / ".env", override=False)
        environ = os.environ
    overrides = overrides or {}
    values = {}
    for f in fields(Settings):
        if f.name in overrides:
            raw = overrides[f.name]
        elif environ.get(f.name, "") != "":  # `NAME=` (as in .env.example) means unset
            raw = environ[f.name]
        else:
            continue
        cast = f.metadata["cast"]
        try:
            values[f.name] = raw if isinstance(raw, (bool, int, float)) and cast is not str else cast(raw)
        except ValueError:
            raise ConfigError(f"{f.name}={raw!r} is not a valid {cast.__name__}") from None
    s = Settings(**values)
    _fill_development_defaults(s)
    # One file per sandbox port, so sandboxes on other ports (tests, the bench) never share one.
    s.SANDBOX_STATE_FILE = s.SANDBOX_STATE_FILE or str(REPO_ROOT / "instance" / f"sandbox-{s.SANDBOX_PORT}.json")
    s.DATABASE_URL = normalize_database_url(s.DATABASE_URL)
    return s


def _fill_development_defaults(s):
    """Outside production, whatever is unset points at the SQLite file and the sandbox."""
    if s.is_production:
        s.WECHAT_API_BASE = s.WECHAT_API_BASE or "http://api.weixin.qq.com"
        # No status query of Unitel's is known (elife/clients/unitel.py): none unless set.
        s.UNITEL_STATUS_PATH = s.UNITEL_STATUS_PATH or "none"
        return
    sandbox = f"http://127.0.0.1:{s.SANDBOX_PORT}"
    s.DATABASE_URL = s.DATABASE_URL or f"sqlite:///{REPO_ROOT / 'instance' / 'elife.db'}"
    s.SECRET_KEY = s.SECRET_KEY or DEV_SECRET_KEY
    s.ADMIN_TOKEN = s.ADMIN_TOKEN or DEV_ADMIN_TOKEN
    s.JOBS_TOKEN = s.JOBS_TOKEN or DEV_JOBS_TOKEN
    s.WECHAT_API_BASE = s.WECHAT_API_BASE or f"{sandbox}/wechat"
    s.WECHAT_APPID = s.WECHAT_APPID or "wxsandbox000000000"
    s.WECHAT_MCH_ID = s.WECHAT_MCH_ID or "1900000000"
    s.WECHAT_ENV_ID = s.WECHAT_ENV_ID or "sandbox-env"
    s.UNITEL_API_URL = s.UNITEL_API_URL or f"{sandbox}/unitel"
    s.UNITEL_USERNAME = s.UNITEL_USERNAME or "sandbox"
    s.UNITEL_PASSWORD = s.UNITEL_PASSWORD or "sandbox"
    s.UNITEL_STATUS_PATH = s.UNITEL_STATUS_PATH or SANDBOX_STATUS_PATH
    s.SANDBOX_SERVICE_URL = s.SANDBOX_SERVICE_URL or f"http://127.0.0.1:{s.PORT}"



def shell_assignments(names, settings=None):
    """`NAME=value` lines, shell-quoted: what `python -m elife settings NAME...` prints,
    so shell scripts read the same values (environment, .env, defaults) as the service."""
    import shlex
    s = settings or load_settings()
    return "\n".join(f"{name}={shlex.quote(str(getattr(s, name)))}" for name in names)
