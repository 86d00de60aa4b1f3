"""The one composition root: ``build(settings)`` wires every service.

Nothing else constructs services; tests call ``build`` with a temp data directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .chat import ChatService
from .config import GenerationConfig, Settings
from .embeddings import TextEmbedder
from .errors import ModelError
from .models import BackendFactory, ModelManager, WarmUp, llama_cpp_factory
from .store import Branches, ConversationStore, Database, PresetStore, StoredConversation, core_migrations
from .store.datadir import DataDirLock, private_dir
from .vectors import VectorStore

if TYPE_CHECKING:  # each pulls in a heavy library when imported; build() imports them lazily
    from sqlite_utils.migrations import Migrations

    from .memory import MemoryService
    from .rag import DocumentService
    from .rerank import CrossEncoderReranker
    from .studio.service import StudioService
    from .vision import ImageService


@dataclass(kw_only=True)
class Services:
    settings: Settings
    database: Database
    models: ModelManager
    conversations: ConversationStore
    presets: PresetStore
    chat: ChatService
    #: sibling navigation, forks, conversation files (engine/store/tree.py)
    branches: Branches
    #: one Chroma client and one text embedder, shared by documents and memory (both lazy)
    vectors: VectorStore
    embedder: TextEmbedder
    documents: DocumentService
    images: ImageService
    memory: MemoryService
    #: what went wrong at start-up but left the app running (e.g. the model failed to load)
    warnings: list[str] = field(default_factory=list)
    #: this process's exclusive hold on the data directory (released last, by close)
    lock: DataDirLock | None = None
    #: background loading started by build(warm_up=True)
    warm_up: WarmUp | None = None
    #: engine.studio.StudioService: answers' provenance and the next-token view
    studio: StudioService | None = None

    def close(self) -> None:
        if self.warm_up is not None:
            self.warm_up.wait()  # never close a store a warm-up step is still opening
        try:
            self.chat.close()  # memory upkeep after the last answer finishes before its stores close
            for part in (self.images, self.documents, self.memory):
                part.close()
            self.models.close()
            self.vectors.close()
            self.database.close()
        finally:
            if self.lock is not None:
                self.lock.release()


def migration_sets() -> list[Migrations]:
    """Every subsystem's named migrations, in the order they apply."""
    sets = [core_migrations]
    from .memory import memory_migrations

    sets.append(memory_migrations)
    from .rag import rag_migrations

    sets.append(rag_migrations)
    from .vision import vision_migrations

    sets.append(vision_migrations)
    from .studio.store import studio_migrations

    sets.append(studio_migrations)
    return sets


def build(
    settings: Settings,
    *,
    load_model: bool = True,
    backend_factory: BackendFactory = llama_cpp_factory,
    owner: dict[str, Any] | None = None,
    warm_up: bool = False,
) -> Services:
    """Every service, over ``settings.data_dir``, which this process then holds alone until
    ``Services.close()``; raises DataDirInUseError (naming the holder) when another process has it.
    ``owner`` describes this process in the lock file, e.g. {"command": "serve", "url": ...}."""
    prepare_data_dir(settings)
    lock = DataDirLock(settings.data_dir, owner)  # first: a second server refuses at once
    try:
        services = _build(settings, load_model=load_model, backend_factory=backend_factory)
    except BaseException:
        lock.release()
        raise
    services.lock = lock
    if warm_up:
        services.warm_up = WarmUp(warm_up_steps(services)).start()
    return services


def prepare_data_dir(settings: Settings) -> None:
    """The data directory and the folders Hearth keeps in it, private to this user (0700)."""
    private_dir(settings.data_dir)
    local_vectors = () if settings.chroma_url else (settings.chroma_dir,)  # a Chroma server keeps them
    for folder in (*local_vectors, settings.files_dir, settings.models_dir):
        private_dir(folder)


def _build(settings: Settings, *, load_model: bool, backend_factory: BackendFactory) -> Services:
    database = Database(settings.db_path, migration_sets())
    conversations = ConversationStore(database)
    models = ModelManager(settings, backend_factory)
    warnings: list[str] = []
    if load_model:
        try:
            models.load()
        except ModelError as e:
            warnings.append(str(e))
    vectors = VectorStore(settings.chroma_dir, url=settings.chroma_url, token=settings.chroma_token)
    embedder = _embedder(settings)
    memory = _memory(settings, database, conversations, models, vectors, embedder)
    chat = ChatService(
        models=models,
        conversations=conversations,
        default_system_prompt=settings.system_prompt,
        memory=memory if settings.memory else None,  # the Memory panel and CLI work either way
    )
    # watched folders send their images to the image index, made just below
    documents = _documents(settings, database, vectors, embedder, models, images=lambda: images)
    chat.retrievers.append(documents)
    from .vision import ImageService

    # lazy: CLIP loads on the first image feature used; documents are looked up when needed
    images = ImageService.from_settings(
        settings, database=database, vectors=vectors, documents=lambda: documents
    )
    chat.retrievers.append(images)
    return Services(
        settings=settings,
        database=database,
        models=models,
        conversations=conversations,
        presets=PresetStore(database),
        chat=chat,
        studio=_studio(database, models, chat),
        branches=Branches(database, conversations),
        vectors=vectors,
        embedder=embedder,
        documents=documents,
        images=images,
        memory=memory,
        warnings=warnings,
    )


def _embedder(settings: Settings) -> TextEmbedder:
    return TextEmbedder(
        settings.embed_model,
        query_prefix=settings.embed_query_prefix,
        passage_prefix=settings.embed_passage_prefix,
        onnx_dir=settings.data_dir / "onnx" if settings.embed_onnx else None,
        precision=settings.embed_precision,
    )


def _memory(
    settings: Settings,
    database: Database,
    conversations: ConversationStore,
    models: ModelManager,
    vectors: VectorStore,
    embedder: TextEmbedder,
) -> MemoryService:
    from .memory import MemoryOptions, MemoryService

    return MemoryService(
        database=database,
        conversations=conversations,
        models=models,
        vectors=vectors,
        embedder=embedder,
        options=MemoryOptions(
            threshold=settings.memory_summary_threshold,
            max_hits=settings.memory_hits,
            agent=settings.memory_agent,
            auto=settings.auto_memory,
        ),
    )


def _documents(
    settings: Settings,
    database: Database,
    vectors: VectorStore,
    embedder: TextEmbedder,
    models: ModelManager,
    *,
    images: Callable[[], ImageService | None],
) -> DocumentService:
    from .rag import DocumentService, IngestLimits, model_generator

    return DocumentService(
        database=database,
        vectors=vectors,
        embedder=embedder,
        limits=IngestLimits(
            max_bytes=settings.max_upload_bytes,
            chunk_tokens=settings.chunk_tokens,
            chunk_overlap=settings.chunk_overlap_tokens,
            max_pages=settings.ingest_max_pages,
            max_chars=settings.ingest_max_chars,
            parse_seconds=settings.ingest_parse_seconds,
        ),
        generate=model_generator(models),  # query rewriting (off unless asked for) uses the chat model
        reranker=_reranker(settings),
        images=images,
    )


def _studio(database: Database, models: ModelManager, chat: ChatService) -> StudioService:
    from .studio.service import StudioService
    from .studio.store import StudioStore

    studio = StudioService(store=StudioStore(database), models=models)
    chat.studio = studio
    studio.start_hashing()  # in the background: the first answers do not wait for it
    return studio


def _reranker(settings: Settings) -> CrossEncoderReranker | None:
    if not settings.rerank_model:
        return None
    from .rerank import CrossEncoderReranker

    return CrossEncoderReranker(settings.rerank_model)


def warm_up_steps(services: Services) -> list[tuple[str, Callable[[], object]]]:
    """What a first turn would otherwise load lazily: the embedder and the stores first, then
    the model evaluates the prompt prefix every new conversation starts with."""
    settings = services.settings
    steps: list[tuple[str, Callable[[], object]]] = []
    documents = services.documents
    has_chunks = documents is not None and documents.store.count_chunks(None) > 0
    embeds = settings.memory or has_chunks  # a first turn embeds its question
    if embeds:
        steps.append(("embedder", lambda: services.embedder.embed_one("warm-up")))
    if settings.memory and services.memory is not None:
        steps.append(("memory", lambda: services.memory.search("warm-up", k=1)))
    if has_chunks:
        steps.append(("documents", lambda: documents.search("warm-up", k=1)))
    if services.images is not None and services.images.records.count(None) > 0:
        # CLIP's text tower: a turn in a chat with images embeds the question with it
        steps.append(
            ("images", lambda: services.images.retrieve_for_chat("warm-up", _unsaved_chat(settings)))
        )
    if services.models.info is not None:
        steps.append(("model", lambda: _prefill_new_chat(services)))
    if embeds:
        # an existing ONNX export opened (and probed) now: questions use it from the first turn
        steps.append(("fast embedder", services.embedder.prepare))
    return steps


def _unsaved_chat(settings: Settings) -> StoredConversation:
    """A conversation that exists only in memory: warm-up reads with it and saves nothing."""
    return StoredConversation(
        id="hearth-warm-up",
        title="",
        system_prompt=settings.system_prompt,
        collections=[],
        created_at="",
        updated_at="",
    )


def _prefill_new_chat(services: Services) -> None:
    """Evaluate the prompt of a new conversation's first turn, so its prefix (system prompt and
    core memory, the same in every new chat) is in the live KV cache and the first real turn
    reuses it like every later one does. Also pages the weights in and sets up llama.cpp's
    compute buffers. Nothing is saved."""
    from .prompt import build_messages, prompt_budget
    from .store import StoredMessage
    from .turn import Contribution, Turn

    settings = services.settings
    config = GenerationConfig(temperature=0.0, max_tokens=1)
    with services.models.lease() as backend:
        chat = _unsaved_chat(settings)
        hello = StoredMessage(
            id="hearth-warm-up", conversation_id=chat.id, seq=1, role="user", content="Hi", created_at=""
        )
        budget = prompt_budget(backend.info.n_ctx, config.max_tokens)
        turn = Turn(
            id="hearth-warm-up",
            conversation=chat,
            user_message=hello,
            history=(),
            backend=backend,
            budget=budget,
        )
        memory = services.chat.memory
        # the memory agent would run tools (and may write) on this fake turn: prefix only then
        use_memory = memory is not None and not settings.memory_agent
        context = (
            memory.contribute(turn) if memory is not None and use_memory else Contribution(source="memory")
        )
        plan = build_messages(
            system_prompt=settings.system_prompt,
            core_memory=context.core_memory,
            summary=context.summary,
            user_message="Hi",
            count_tokens=backend.count_tokens,
            budget=budget,
        )
        for _ in backend.stream_chat(plan.messages, config):
            pass
