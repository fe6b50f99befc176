"""The Responses API and Anthropic's Messages API to and from chat completions: each request
body is checked (every 4xx names the field, in the API's own path style), turned into chat
messages and parameters, and the chat answer (or its stream) turned back into the API's
response object (or its typed events)."""
