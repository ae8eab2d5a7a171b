"""`kronos serve`: a forecasting service (FastAPI, uvicorn) and its web page.

`kronos.serve.app.create_app(predictor, config)` builds the app; `kronos serve` runs it. This
package's modules other than `guard` need the serve extra: pip install 'kronos-forecasting[serve]'.
"""
