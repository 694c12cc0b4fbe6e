"""The representation store: each distinct representation a study's trials ask for, encoded once per study.

A search space that searches the representation (`vectorizer`, `vector_size`, `window`, `sg`, `min_count`; see
trainables/vectorize.py `SEARCHED`) gives its trials different data. A per-study Ray actor maps a representation's
key to the ObjectRef of its EncodedData: the first request for a key starts one encoding task (word vectors from
the disk cache or trained, then the encoding) and every request for that key, at once or later, gets the same
ref, so two trials that need the same representation wait for one build. The EncodedData reaches the trials
through Ray's object store, as the study's own data does through `tune.with_parameters`.

The actor and its tasks take no CPU of their own: a trial that asks blocks until its data is there, and the
task runs in its stead (a CPU reserved for the tasks would deadlock a study whose trials hold every CPU).
Not here: the trainable's side (trainables/trainable.py `representation_data`), the final stage's encodings
(study/final/stage.py, which plans its (fold, representation) pairs up front).
"""

from __future__ import annotations

from typing import Any

from trainables.prepare import EncodedData
from trainables.vectorize import SEARCHED, VectorConfig, representation_key, with_params


class RepresentationStore:
    """Representation key -> ObjectRef of its EncodedData, each built by one task (a Ray actor: `start_store`)."""

    def __init__(self, inputs: dict[str, Any], clean, base: VectorConfig, cache_dir, own: list):
        """`own`: [the ObjectRef of the study's own EncodedData, of `base`] (in a list, so Ray passes the ref)."""
        import ray

        from trainables.prepare import prepare

        self._inputs = inputs  # ObjectRefs of the training and validation rows and the unlabelled corpus
        self._clean, self._base, self._cache_dir = clean, base, cache_dir
        self._refs: dict[str, Any] = {representation_key(base_params(base)): own[0]}  # key -> ObjectRef
        self._encode = ray.remote(prepare).options(num_cpus=0, max_retries=2)
        self.builds: list[str] = []

    def get(self, params: dict[str, Any]) -> list:
        """[the ObjectRef of the representation's EncodedData] (in a list, so that Ray passes the ref itself)."""
        key = representation_key(params)
        if key not in self._refs:
            vectors = with_params(self._base, params)
            i = self._inputs
            self._refs[key] = self._encode.remote(
                i["train"], i["valid"], i["unlabelled"], self._clean, vectors, self._cache_dir
            )
            self.builds.append(key)
        return [self._refs[key]]

    def built(self) -> list[str]:
        """The keys this store has started a build for, in order (each at most once)."""
        return list(self.builds)


def start_store(dataset, clean, base: VectorConfig, cache_dir, data: EncodedData):
    """A RepresentationStore actor for the study's split, which knows the study's own representation already.

    Args:
        dataset: the study's Dataset (its train, valid and unlabelled parts go to the object store once).
        clean: the cleaning settings.
        base: the study's VectorConfig, which a trial's searched settings change.
        cache_dir: the word-vector cache.
        data: the study's own EncodedData (of `base`), for a trial whose settings equal the base ones.
    """
    import ray

    inputs = {
        "train": ray.put(dataset.train),
        "valid": ray.put(dataset.valid),
        "unlabelled": ray.put(dataset.unlabelled),
    }
    actor = ray.remote(RepresentationStore).options(num_cpus=0, max_restarts=2)
    return actor.remote(inputs, clean, base, cache_dir, [ray.put(data)])


def base_params(vectors: VectorConfig) -> dict[str, Any]:
    """The searched settings of `vectors`, by their search names."""
    return {name: getattr(vectors, field) for name, field in SEARCHED.items()}
