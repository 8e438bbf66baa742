"""The official OpenAI Python client pointed at `benchtop serve`: it must just work.

Usage: python tests/openai_client.py BASE_URL TOKEN CHAT_MODEL EMBED_MODEL
Prints one JSON object with what it got; exits non-zero if the client fails or an error maps to the
wrong exception. Run by crates/cli/tests/serve.rs, which checks the values against the server.
"""
import json
import sys

import openai

base, token, chat_model, embed_model = sys.argv[1:5]
client = openai.OpenAI(base_url=base + "/v1", api_key=token, max_retries=0)
out = {}

models = client.models.list()
out["models"] = sorted(m.id for m in models.data)

# The client asks for base64 by default and decodes it itself.
emb = client.embeddings.create(model=embed_model, input=["hello world", "second"])
out["embedding"] = emb.data[0].embedding
out["embedding_count"] = len(emb.data)
out["embedding_tokens"] = emb.usage.prompt_tokens
emb_float = client.embeddings.create(model=embed_model, input="hello world", encoding_format="float")
out["embedding_float"] = emb_float.data[0].embedding

messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
whole = client.chat.completions.create(model=chat_model, messages=messages, max_tokens=10, temperature=0)
out["chat"] = whole.choices[0].message.content
out["chat_finish"] = whole.choices[0].finish_reason
out["chat_usage"] = whole.usage.model_dump()
out["chat_id"] = whole.id

pieces = []
usage = None
stream = client.chat.completions.create(
    model=chat_model, messages=messages, max_tokens=10, temperature=0, stream=True, stream_options={"include_usage": True}
)
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage.model_dump()
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
out["stream"] = "".join(pieces)
out["stream_pieces"] = len(pieces)
out["stream_usage"] = usage

# Errors arrive as the client's own exception types, with the server's message.
errors = {}
try:
    client.embeddings.create(model="no-such-model", input="x")
except openai.NotFoundError as e:
    errors["not_found"] = e.message
try:
    client.chat.completions.create(model=chat_model, messages=[], max_tokens=5)
except openai.BadRequestError as e:
    errors["bad_request"] = e.message
try:
    openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0).models.list()
except openai.AuthenticationError as e:
    errors["auth"] = e.message
out["errors"] = errors

print(json.dumps(out))
