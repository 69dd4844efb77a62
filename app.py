"""The REST API (Chalice). Routes live in chalicelib/routes; this file only assembles them."""

from chalice import Chalice

from chalicelib.routes import public

app = Chalice(app_name="exchange-orderbook")
app.register_blueprint(public.bp)
