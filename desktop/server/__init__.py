"""`tokenglass serve`: an OpenAI-compatible HTTP API over the chat service, with real logprobs.

Modules, one job each:
    app.py         the Starlette app: routes, CORS, the API key, error handlers (`create_app`)
    routes.py      the endpoints: /v1/models, /v1/chat/completions, /v1/completions
    validation.py  a JSON body -> a checked call with its GenerationSettings (400 on a bad field)
    streaming.py   a RunHandle seen from the event loop, the client's disconnect, server-sent events
    errors.py      OpenAI's error object and the status of each fault
    saving.py      chats through the server into the history (one small function)
    runner.py      uvicorn on a socket we bind (CLI in the foreground, the window on a thread)
    command.py     the `tokenglass serve` subcommand

Knows: HTTP, the chat service and the engine's records (shapes from desktop/openai_json.py).
Does not know: Qt. The window starts it through runner.py (desktop/ui/local_server.py).
"""
