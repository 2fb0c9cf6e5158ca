"""Model names a user types: catalog ids, aliases and the Hugging Face repo ids the models are published under."""

from __future__ import annotations

import pytest
from gpuplan.models.catalog import _alias_index, load_catalog, resolve
from gpuplan.models.errors import InputError


@pytest.mark.parametrize(("name", "model_id"), [
    # Hugging Face repo ids as published (huggingface.co/deepseek-ai/DeepSeek-R1, /openai/gpt-oss-120b,
    # /meta-llama/Llama-3.1-8B-Instruct), in any case, with or without the organisation
    ("deepseek-ai/DeepSeek-R1", "deepseek-r1"),
    ("openai/gpt-oss-120b", "gpt-oss-120b"),
    ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),
    ("Llama-3.1-8B-Instruct", "llama-3.1-8b"),
    ("DEEPSEEK-R1", "deepseek-r1"),
])
def test_repo_ids_resolve_to_the_catalog_model(name, model_id):
    assert resolve(name).id == model_id


def test_every_repo_id_names_its_own_model():
    # no catalog model's repo id (or its name part) is taken by another model's id or alias
    catalog = load_catalog()
    index = _alias_index(catalog)
    for model in catalog.values():
        if model.hf_repo:
            repo = model.hf_repo.lower()
            assert index[repo] == model.id
            assert index[repo.rsplit("/", 1)[-1]] == model.id


def test_unknown_repo_id_is_an_input_error():
    with pytest.raises(InputError, match="unknown model"):
        resolve("some-org/not-a-model")
