"""The access_token shared by every worker and host (a host only: Cloud Hosting's open API
needs none), kept in `wechat_tokens`, one row per appid.

Each call is its own short transaction on its own connection, so the sender may use it
whatever its session is doing. Two workers renewing at once both ask stable_token in
normal mode and are given the same token; only a forced refresh (which voids the old
token) is claimed first, by one conditional UPDATE, so two workers never void each
other's new token.
"""
import sqlalchemy as sa

from ..clients.wechat_messages import FORCE_GAP, Token
from ..extensions import db
from ..models import WeChatToken
from ..timeutil import utcnow

_T = WeChatToken.__table__


class DatabaseTokens:
    def __init__(self, appid):
        self.appid = appid or "-"

    def load(self):
        with db.engine.connect() as c:
            row = c.execute(sa.select(_T.c.token, _T.c.expires_at).where(_T.c.appid == self.appid)).first()
        return Token(row.token, row.expires_at) if row else None

    def save(self, token):
        now = utcnow()
        with db.engine.begin() as c:
            done = c.execute(_T.update().where(_T.c.appid == self.appid).values(
                token=token.value, expires_at=token.expires_at, updated_at=now)).rowcount
            if not done:
                try:
                    with c.begin_nested():
                        c.execute(_T.insert().values(appid=self.appid, token=token.value,
                                                     expires_at=token.expires_at, updated_at=now))
                except sa.exc.IntegrityError:  # another worker's first save came first
                    c.execute(_T.update().where(_T.c.appid == self.appid).values(
                        token=token.value, expires_at=token.expires_at, updated_at=now))

    def claim_force(self, now):
        """True for the one caller (any worker, any host) allowed a forced refresh now."""
        with db.engine.begin() as c:
            won = c.execute(_T.update().where(
                _T.c.appid == self.appid,
                sa.or_(_T.c.forced_at.is_(None), _T.c.forced_at < now - FORCE_GAP),
            ).values(forced_at=now)).rowcount
        return won == 1
