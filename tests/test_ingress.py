"""@serval.ingress(FastAPI) end to end: routes bound to the replica's instance."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

import serval as serve

api = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@serve.deployment(num_replicas=1)
@serve.ingress(api)
class Shop:
    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.items: list[Item] = []

    @api.get("/hello")
    def hello(self, name: str) -> str:
        return f"Hello {name} ({self.currency})"

    @api.post("/items")
    async def add(self, item: Item) -> dict:
        self.items.append(item)
        return {"count": len(self.items), "total": sum(i.price for i in self.items)}

    @api.get("/items/{index}")
    def get(self, index: int) -> Item:
        return self.items[index]

    def count(self) -> int:  # a plain method, reachable through handles
        return len(self.items)


def test_fastapi_ingress(client: httpx.Client) -> None:
    handle = serve.run(Shop.bind("EUR"), name="shop", route_prefix="/shop")
    assert client.get("/shop/hello", params={"name": "ada"}).json() == "Hello ada (EUR)"
    r = client.post("/shop/items", json={"name": "tea", "price": 2.5})
    assert r.json() == {"count": 1, "total": 2.5}
    assert client.get("/shop/items/0").json() == {"name": "tea", "price": 2.5}
    # FastAPI's own validation still answers (422), and unknown sub-paths 404.
    assert client.post("/shop/items", json={"name": "x"}).status_code == 422
    assert client.get("/shop/nope").status_code == 404
    assert handle.count.remote().result() == 1
    docs = client.get("/shop/openapi.json")
    assert docs.status_code == 200
    assert "/hello" in docs.json()["paths"]
