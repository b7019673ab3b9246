import pytest

from elife.config import DEV_ADMIN_TOKEN, DEV_SECRET_KEY, ConfigError, load_settings


def test_development_defaults_need_nothing_configured():
    s = load_settings(environ={})
    assert s.ELIFE_ENV == "development"
    assert s.DATABASE_URL.startswith("sqlite:///") and s.DATABASE_URL.endswith("instance/elife.db")
    assert s.WECHAT_API_BASE == "http://127.0.0.1:3001/wechat"
    assert s.UNITEL_API_URL == "http://127.0.0.1:3001/unitel"
    assert (s.PORT, s.SANDBOX_PORT, s.LOG_LEVEL) == (3000, 3001, "info")
    assert (s.DB_MAX_RETRIES, s.DB_RETRY_DELAY) == (5, 5000)
    assert (s.SWEEP_GRACE_SECONDS, s.SWEEP_STUCK_SECONDS) == (60, 300)
    s.validate()


def test_sandbox_urls_follow_sandbox_port():
    s = load_settings(environ={"SANDBOX_PORT": "4001", "PORT": "4000"})
    assert s.WECHAT_API_BASE == "http://127.0.0.1:4001/wechat"
    assert s.SANDBOX_SERVICE_URL == "http://127.0.0.1:4000"
    assert s.SANDBOX_STATE_FILE.endswith("/instance/sandbox-4001.json")  # one file per sandbox port


def test_environment_wins_over_dotenv(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("LOG_LEVEL=debug\nDB_MAX_RETRIES=9\nSWEEP_BATCH=7\n")
    monkeypatch.setenv("DB_MAX_RETRIES", "2")
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    monkeypatch.delenv("SWEEP_BATCH", raising=False)
    s = load_settings(dotenv_path=env_file)
    assert s.LOG_LEVEL == "debug"      # from .env
    assert s.DB_MAX_RETRIES == 2       # environment wins
    assert s.SWEEP_BATCH == 7


def test_prisma_style_mysql_url_uses_pymysql():
    s = load_settings(environ={"DATABASE_URL": "mysql://user:pw@db:3306/elife"})
    assert s.DATABASE_URL == "mysql+pymysql://user:pw@db:3306/elife?charset=utf8mb4"


def test_production_names_every_missing_setting():
    with pytest.raises(ConfigError) as e:
        load_settings(environ={"ELIFE_ENV": "production", "WECHAT_APPID": "wx1"}).validate()
    msg = str(e.value)
    for name in ("DATABASE_URL", "SECRET_KEY", "ADMIN_TOKEN", "WECHAT_MCH_ID", "WECHAT_ENV_ID",
                 "UNITEL_API_URL", "UNITEL_USERNAME", "UNITEL_PASSWORD"):
        assert name in msg
    assert "WECHAT_APPID" not in msg


PRODUCTION = {"ELIFE_ENV": "production", "DATABASE_URL": "mysql://u:p@h/elife",
              "SECRET_KEY": "k" * 32, "ADMIN_TOKEN": "a" * 32, "WECHAT_APPID": "wx", "WECHAT_MCH_ID": "1",
              "WECHAT_ENV_ID": "e", "UNITEL_API_URL": "https://api.unitel.mn/api/v1", "UNITEL_USERNAME": "u",
              "UNITEL_PASSWORD": "p"}


def test_production_uses_real_wechat_and_no_sandbox():
    s = load_settings(environ=PRODUCTION).validate()
    assert s.WECHAT_API_BASE == "http://api.weixin.qq.com"
    assert s.SANDBOX_SERVICE_URL == ""


def test_bad_number_is_a_clear_error():
    with pytest.raises(ConfigError, match="DB_MAX_RETRIES"):
        load_settings(environ={"DB_MAX_RETRIES": "many"})


def test_env_example_lists_every_setting():
    from dataclasses import fields
    from pathlib import Path

    from elife.config import Settings
    text = (Path(__file__).resolve().parent.parent / ".env.example").read_text()
    missing = [f.name for f in fields(Settings) if f"{f.name}=" not in text]
    assert missing == []


def test_production_start_without_settings_is_one_clear_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parent.parent
    env = {"PATH": os.environ["PATH"], "ELIFE_ENV": "production", "FLASK_APP": "wsgi",
           "WECHAT_APPID": "wx", "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "flask", "elife", "sweep"], cwd=repo, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("elife: cannot start: missing required settings: DATABASE_URL, SECRET_KEY")
    assert "UNITEL_PASSWORD" in line and "WECHAT_APPID" not in line


def test_a_copy_of_env_example_is_a_working_development_setup():
    """Empty values in .env.example mean 'unset'; its production values are commented."""
    from pathlib import Path
    from dotenv import dotenv_values
    values = dotenv_values(Path(__file__).resolve().parent.parent / ".env.example")
    s = load_settings(environ={k: v for k, v in values.items() if v is not None})
    assert s.LOG_DIR.endswith("logs")
    assert s.UNITEL_API_URL == "http://127.0.0.1:3001/unitel"
    assert s.WECHAT_API_BASE == "http://127.0.0.1:3001/wechat"
    assert s.DATABASE_URL.startswith("sqlite:///")
    prod = load_settings(environ={**{k: v for k, v in values.items() if v is not None},
                                  "ELIFE_ENV": "production"})
    assert "UNITEL_PASSWORD" in prod.missing_required() and "WECHAT_APPID" in prod.missing_required()


def test_unitel_status_query_is_none_in_production_and_the_sandbox_in_development():
    dev = load_settings(environ={})
    assert dev.UNITEL_STATUS_PATH == "/service/status"
    assert (dev.UNITEL_PRICE_CACHE_SECONDS, dev.UNITEL_PRICE_TIMEOUT, dev.UNITEL_VAT_FLAG) == (180, 2.0, "1")
    prod_env = {"ELIFE_ENV": "production", "DATABASE_URL": "mysql://u:p@h/elife", "SECRET_KEY": "k" * 32,
                "ADMIN_TOKEN": "a" * 32, "WECHAT_APPID": "wx", "WECHAT_MCH_ID": "1", "WECHAT_ENV_ID": "e",
                "UNITEL_API_URL": "https://api.unitel.mn/api/v1", "UNITEL_USERNAME": "u", "UNITEL_PASSWORD": "p"}
    assert load_settings(environ=prod_env).validate().UNITEL_STATUS_PATH == "none"
    given = load_settings(environ={**prod_env, "UNITEL_STATUS_PATH": "/service/check"}).validate()
    assert given.UNITEL_STATUS_PATH == "/service/check"
    assert load_settings(environ={"UNITEL_STATUS_PATH": "none"}).validate().UNITEL_STATUS_PATH == "none"


@pytest.mark.parametrize("name, value", [
    ("UNITEL_STATUS_PATH", "service/status"), ("UNITEL_STATUS_PATH", "None"), ("UNITEL_VAT_FLAG", "2"),
    ("UNITEL_VAT_FLAG", "yes"), ("UNITEL_VAT_REGISTER_NO", "12345"), ("UNITEL_PRICE_TIMEOUT", "0"),
])
def test_bad_unitel_settings_are_refused_at_start(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings(environ={name: value}).validate()


@pytest.mark.parametrize("name, value", [
    ("WECHAT_MESSAGE_API", "both"), ("WECHAT_MESSAGE_API", "Cloud"), ("NOTIFY_MINIPROGRAM_STATE", "release"),
    ("NOTIFY_LANG", "mn_MN"), ("NOTIFY_MAX_ATTEMPTS", "0"), ("NOTIFY_TIMEOUT", "0"),
])
def test_bad_message_settings_are_refused_at_start(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings(environ={name: value}).validate()


def test_a_host_sending_messages_needs_the_secret_stable_token_asks_for():
    with pytest.raises(ConfigError, match="WECHAT_SECRET"):
        load_settings(environ={**PRODUCTION, "WECHAT_MESSAGE_API": "token"}).validate()
    s = load_settings(environ={**PRODUCTION, "WECHAT_MESSAGE_API": "token", "WECHAT_SECRET": "s" * 32}).validate()
    from elife.clients.wechat_messages import MessageClient
    assert MessageClient(s).base == "https://api.weixin.qq.com"  # the secret never over plain http
    assert MessageClient(load_settings(environ=PRODUCTION).validate()).base == "http://api.weixin.qq.com"


# -- secrets in production (issue 16, finding 2) ---------------------------------------------

@pytest.mark.parametrize("name, value, said", [
    ("SECRET_KEY", DEV_SECRET_KEY, "SECRET_KEY is the development default"),
    ("ADMIN_TOKEN", DEV_ADMIN_TOKEN, "ADMIN_TOKEN is the development default"),
    ("SECRET_KEY", "k" * 31, "SECRET_KEY is shorter than 32 characters"),
    ("ADMIN_TOKEN", "a", "ADMIN_TOKEN is shorter than 32 characters"),
])
def test_production_refuses_known_or_short_secrets(name, value, said):
    with pytest.raises(ConfigError) as e:
        load_settings(environ={**PRODUCTION, name: value}).validate()
    assert said in str(e.value)
    other = "ADMIN_TOKEN" if name == "SECRET_KEY" else "SECRET_KEY"
    assert other not in str(e.value)


def test_production_names_both_weak_secrets_and_the_missing_ones_first():
    env = {**PRODUCTION, "SECRET_KEY": DEV_SECRET_KEY, "ADMIN_TOKEN": "short", "UNITEL_PASSWORD": ""}
    with pytest.raises(ConfigError) as e:
        load_settings(environ=env).validate()
    assert str(e.value) == ("missing required settings: UNITEL_PASSWORD; SECRET_KEY is the development "
                            "default; ADMIN_TOKEN is shorter than 32 characters")


def test_development_keeps_its_defaults():
    s = load_settings(environ={}).validate()
    assert (s.SECRET_KEY, s.ADMIN_TOKEN) == (DEV_SECRET_KEY, DEV_ADMIN_TOKEN)
    assert load_settings(environ={"ADMIN_TOKEN": "a"}).validate().ADMIN_TOKEN == "a"


def test_create_app_refuses_a_production_with_the_repos_secret(settings_env):
    """Through the app factory, as gunicorn's workers and every flask command build it,
    before anything connects to a database."""
    from elife import create_app
    env = {**settings_env, **PRODUCTION, "DATABASE_URL": settings_env["DATABASE_URL"],
           "SECRET_KEY": DEV_SECRET_KEY}
    with pytest.raises(ConfigError, match="SECRET_KEY is the development default"):
        create_app(env)
    with pytest.raises(ConfigError, match="ADMIN_TOKEN is shorter than 32 characters"):
        create_app({**env, "SECRET_KEY": "s" * 40, "ADMIN_TOKEN": "a"})

