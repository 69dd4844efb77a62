"""The REST API (Chalice) and the WebSocket feed's handlers. Routes live in
chalicelib/api/routes and the WebSocket handlers in chalicelib/marketdata/ws.py; this file only
assembles them. Chalice takes WebSocket handlers on the app itself, not on blueprints."""

from chalice import Chalice

from chalicelib.api.routes import accounts, auth, market, orders, public
from chalicelib.marketdata import ws
from chalicelib.trading import faucet

app = Chalice(app_name="exchange-orderbook")
for blueprint in (public.bp, market.bp, auth.bp, accounts.bp, orders.bp):
    app.register_blueprint(blueprint)
if faucet.enabled():
    # Imported only here: importing the module declares its route's OpenAPI entry, so with the
    # faucet off the route is neither served nor documented.
    from chalicelib.api.routes import dev

    app.register_blueprint(dev.bp)

app.experimental_feature_flags.update(["WEBSOCKETS"])
# Module-level names: each is a Lambda handler (`app.ws_message`) in the package Chalice builds.
ws_connect = app.on_ws_connect(name="ws_connect")(ws.on_connect)
ws_message = app.on_ws_message(name="ws_message")(ws.on_message)
ws_disconnect = app.on_ws_disconnect(name="ws_disconnect")(ws.on_disconnect)
