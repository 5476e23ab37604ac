"""aiogram's models build their validators on first use instead of all at import.

Importing aiogram.types rebuilds each of its few hundred pydantic models, and every validator
carries its own copy of the schemas it nests: about 100 MB of memory, almost all for types the
bot never validates. Here that rebuild only records the namespace it was given, so a model
built later (pydantic does it on first validation) resolves the same forward references.
This module must be imported before anything imports aiogram.
"""

import sys
from typing import Any

from pydantic import BaseModel


def _install() -> None:
    if "aiogram.types" in sys.modules:
        return  # too late: aiogram was imported first and its models are built already
    rebuild = BaseModel.model_rebuild.__func__  # type: ignore[attr-defined]
    types_namespace: dict[str, Any] = {}

    def record_namespace(
        cls: type[BaseModel],
        *,
        force: bool = False,
        raise_errors: bool = True,
        _parent_namespace_depth: int = 2,
        _types_namespace: dict[str, Any] | None = None,
    ) -> bool | None:
        if _types_namespace is not None and cls.__module__.startswith("aiogram.types"):
            types_namespace.update(_types_namespace)
            _remember(cls, _types_namespace)
            return None
        return rebuild(  # type: ignore[no-any-return]
            cls,
            force=force,
            raise_errors=raise_errors,
            _parent_namespace_depth=_parent_namespace_depth + 1,
            _types_namespace=_types_namespace,
        )

    BaseModel.model_rebuild = classmethod(record_namespace)  # type: ignore[assignment,method-assign]
    try:
        import aiogram.methods
        import aiogram.types
    finally:
        BaseModel.model_rebuild = classmethod(rebuild)  # type: ignore[assignment,method-assign]
    # Methods name the types they carry the same way and were never rebuilt with them.
    for name in aiogram.methods.__all__:
        method = getattr(aiogram.methods, name)
        if isinstance(method, type) and issubclass(method, BaseModel):
            _remember(method, types_namespace)


def _remember(cls: type[BaseModel], namespace: dict[str, Any]) -> None:
    cls.__pydantic_parent_namespace__ = {**(cls.__pydantic_parent_namespace__ or {}), **namespace}


_install()
