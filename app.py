"""The REST API (Chalice). Routes live in chalicelib/routes; this file only assembles them."""

from chalice import Chalice

from chalicelib.routes import accounts, auth, dev, market, orders, public

app = Chalice(app_name="exchange-orderbook")
for blueprint in (public.bp, market.bp, auth.bp, accounts.bp, orders.bp, dev.bp):
    app.register_blueprint(blueprint)
