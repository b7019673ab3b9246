// PM2: `pm2 start deploy/ecosystem.config.js` from the checkout; then the seed's own
// commands work as written: `pm2 logs elife-backend`, `pm2 stop elife-backend`.
// gunicorn reads PORT and the rest from .env (elife/config.py); logs also go to logs/.
const path = require("path");
const root = path.resolve(__dirname, "..");

module.exports = {
  apps: [
    {
      name: "elife-backend",
      cwd: root,
      script: path.join(root, ".venv/bin/gunicorn"),
      args: "wsgi:app -c gunicorn.conf.py",
      interpreter: "none",
      env: { ELIFE_ENV: "production" },
      autorestart: true,
      // 3: a setting is missing or refused (or a worker cannot boot), 4: the app cannot
      // be loaded. Restarting changes nothing: stay stopped until someone fixes .env.
      stop_exit_codes: [3, 4],
      kill_timeout: 60000, // gunicorn's graceful_timeout: 46 s by default (started top-ups finish)
      max_restarts: 20,
      min_uptime: "10s",
    },
  ],
};
