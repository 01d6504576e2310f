"""The catalog: schema, migrations and the store. No database session leaves this package."""

from tracktiond.catalog.store import Catalog

__all__ = ["Catalog"]
