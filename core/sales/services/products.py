"""Retail products: what the clinic sells over the counter, by SKU."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.errors import Refused
from core.extensions import db
from core.money import Money
from core.sales.models import Product
from core.sales.services.common import _invalid
from core.tenancy.models import Clinic
from core.unit_of_work import transaction


@transaction
def add_product(clinic: Clinic, data: dict[str, Any]) -> Product:
    """Add a retail product to the clinic's catalogue."""
    if db.session.scalar(select(Product.id).where(Product.sku == data["sku"])):
        raise _invalid("sku", "A product with this SKU exists.", Refused)
    product = Product(
        sku=data["sku"],
        name=data["name"],
        price_minor=Money.parse(data["price"], clinic.currency).minor,
        currency=clinic.currency,
        prescription=data.get("prescription", False),
    )
    db.session.add(product)
    db.session.flush()
    return product
