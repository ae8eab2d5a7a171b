"""`kronos mcp`: Kronos as Model Context Protocol tools for agents (the official MCP Python SDK).

`kronos.mcpserver.tools` does the work (forecast, evaluate, models) over a `KronosPredictor`,
with the service's checks and caps; `kronos.mcpserver.server` puts it on the SDK, over stdio or
streamable HTTP inside `kronos serve`. Named so as not to shadow the SDK's own `mcp` package.
Needs the mcp extra: pip install 'kronos-forecasting[mcp]'.
"""
