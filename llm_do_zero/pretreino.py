"""Capítulo 05-pretreino: o código que o capítulo ensina e os seguintes reutilizam.

ARQUIVO GERADO por `python ferramentas/exportar.py` a partir das células `# exportar` de
`05-pretreino/notebook.ipynb`. Não edite à mão: mude o notebook e gere de novo.
"""
from pathlib import Path
import time

import tiktoken
import torch

from llm_do_zero.oficina import (
    artifacts_dir, cache_dir, download_file, DownloadError, get_device, get_mode, progress_bar, set_seed,
)
from llm_do_zero.estatistica import load_text, MACHADO_BOOKS
from llm_do_zero.tokens import create_dataloader
from llm_do_zero.gpt import (
    generate_text_simple, GPTModel, load_weights_into_gpt, text_to_token_ids, token_ids_to_text,
)


# %% 05-pretreino/notebook.ipynb · célula 6
PRETRAIN_SETTINGS = {
    "rapido": {
        "model": {"vocab_size": 50257, "context_length": 128, "emb_dim": 128, "n_heads": 4, "n_layers": 2,
                  "drop_rate": 0.0, "qkv_bias": False},
        "train_books": ["domCasmurro"], "val_books": None, "val_fraction": 0.1,
        "batch_size": 8, "lr": 6e-3, "weight_decay": 0.1, "num_epochs": 4, "max_steps": 150, "max_seconds": 600,
        "eval_freq": 25, "eval_iter": 4,
    },
    "completo": {
        "model": {"vocab_size": 50257, "context_length": 256, "emb_dim": 512, "n_heads": 8, "n_layers": 8,
                  "drop_rate": 0.1, "qkv_bias": False},
        "train_books": [b for b in MACHADO_BOOKS if b not in ("memorial-de-aires", "reliquias")],
        "val_books": ["memorial-de-aires", "reliquias"], "val_fraction": None,
        "batch_size": 16, "lr": 6e-4, "weight_decay": 0.1, "num_epochs": 4, "max_steps": None, "max_seconds": 1800,
        "eval_freq": 200, "eval_iter": 20,
    },
}


def load_pretraining_texts(mode: str | None = None) -> tuple[str, str]:
    """Textos de treino e validação do pré-treino.

    rápido: Dom Casmurro, os primeiros 90% para treino e os últimos 10% para validação (cortes contíguos);
    completo: livros inteiros de cada lado, separados pelo token especial <|endoftext|>.
    """
    cfg = PRETRAIN_SETTINGS[mode or get_mode()]
    separador = "<|endoftext|>"
    treino = separador.join(load_text(b) for b in cfg["train_books"])
    if cfg["val_books"]:
        return treino, separador.join(load_text(b) for b in cfg["val_books"])
    corte = int(len(treino) * (1 - cfg["val_fraction"]))
    return treino[:corte], treino[corte:]


def create_pretraining_loaders(mode: str | None = None):
    """Carregadores (treino, validação) de janelas sem sobreposição, no tamanho de contexto do modo."""
    cfg = PRETRAIN_SETTINGS[mode or get_mode()]
    texto_treino, texto_val = load_pretraining_texts(mode)
    ctx = cfg["model"]["context_length"]
    train_loader = create_dataloader(texto_treino, cfg["batch_size"], ctx, ctx, shuffle=True, drop_last=True)
    val_loader = create_dataloader(texto_val, cfg["batch_size"], ctx, ctx, shuffle=False, drop_last=False)
    return train_loader, val_loader


# %% 05-pretreino/notebook.ipynb · célula 25
def calc_loss_batch(input_batch: torch.Tensor, target_batch: torch.Tensor, model, device) -> torch.Tensor:
    """Entropia cruzada média do próximo token em um lote (entrada e alvo com formato (lote, posições))."""
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    logits = model(input_batch)                                    # (lote, posições, vocabulário)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), target_batch.flatten())


def calc_loss_loader(data_loader, model, device, num_batches: int | None = None) -> float:
    """Perda média nos primeiros `num_batches` lotes do carregador (todos, se None); NaN se não houver lotes."""
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    if num_batches == 0:
        return float("nan")
    total = 0.0
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i >= num_batches:
            break
        total += calc_loss_batch(input_batch, target_batch, model, device).item()
    return total / num_batches


def evaluate_model(model, train_loader, val_loader, device, eval_iter: int) -> tuple[float, float]:
    """Perdas de treino e validação em `eval_iter` lotes, em modo de avaliação e sem gradiente."""
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


def generate_and_print_sample(model, tokenizer, device, start_context: str, max_new_tokens: int = 40) -> str:
    """Gera uma continuação gulosa de `start_context`, imprime em uma linha e devolve o texto."""
    model.eval()
    context_size = model.pos_emb.weight.shape[0]
    encoded = text_to_token_ids(start_context, tokenizer).to(device)
    with torch.no_grad():
        token_ids = generate_text_simple(model, encoded, max_new_tokens, context_size)
    texto = token_ids_to_text(token_ids, tokenizer)
    print(texto.replace("\n", " "))
    model.train()
    return texto


def train_model_simple(model, train_loader, val_loader, optimizer, device, num_epochs: int, eval_freq: int,
                       eval_iter: int, start_context: str, tokenizer, max_seconds: float | None = None,
                       max_steps: int | None = None):
    """Laço de pré-treinamento: épocas de lotes, avaliação a cada `eval_freq` passos, amostra ao fim de cada época.

    `max_steps` encerra o treino antes do fim das épocas, sempre no mesmo passo, em qualquer máquina.
    `max_seconds` é só uma rede de segurança para máquinas muito lentas: se ela parar o treino, um aviso diz
    que os números não são os de referência. A última medição acontece no passo em que o treino parou.
    Devolve (train_losses, val_losses, track_tokens_seen): as perdas medidas e os tokens vistos em cada medição.
    """
    train_losses, val_losses, track_tokens_seen = [], [], []
    tokens_seen, global_step = 0, -1
    inicio = time.perf_counter()
    motivo = None
    total = num_epochs * len(train_loader) if max_steps is None else min(max_steps, num_epochs * len(train_loader))
    barra = progress_bar(total=total, desc="pré-treino", unit="passo")
    for epoch in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            tokens_seen += input_batch.numel()
            global_step += 1
            barra.update(1)
            if max_steps is not None and global_step + 1 >= max_steps:
                motivo = f"{max_steps} passos"
            elif max_seconds is not None and time.perf_counter() - inicio > max_seconds:
                motivo = (f"aviso: o limite de segurança de {max_seconds:.0f} s parou o treino no passo "
                          f"{global_step + 1} de {total}; os números serão diferentes dos de referência")
            if global_step % eval_freq == 0 or motivo:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                barra.set_postfix(treino=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
            if motivo:
                break
        barra.write(f"época {epoch + 1}, passo {global_step + 1}:")
        generate_and_print_sample(model, tokenizer, device, start_context)
        if motivo:
            barra.write(f"{motivo}: fim do treino.")
            break
    barra.close()
    return train_losses, val_losses, track_tokens_seen


# %% 05-pretreino/notebook.ipynb · célula 29
def save_checkpoint(path: str | Path, model, optimizer=None, config: dict | None = None, **extra) -> Path:
    """Salva modelo (+ otimizador, se houver), configuração e extras em um arquivo carregável com weights_only=True."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pacote = {"config": dict(config or {}), "model_state_dict": model.state_dict(), **extra}
    if optimizer is not None:
        pacote["optimizer_state_dict"] = optimizer.state_dict()
    temporario = path.with_name(path.name + ".part")
    torch.save(pacote, temporario)
    temporario.replace(path)
    return path


def load_checkpoint(path: str | Path, device="cpu", optimizer=None, model=None):
    """Carrega um checkpoint do curso: devolve (GPTModel com os pesos, dicionário do checkpoint).

    Sem `model`, cria um GPTModel novo a partir da configuração guardada. Para **retomar um treino**, crie antes o
    modelo e o otimizador e passe os dois (`model=`, `optimizer=`): os pesos e o estado do otimizador são
    restaurados neles. Arquivo ausente -> FileNotFoundError; arquivo que não é um checkpoint do curso, ou pesos
    que não combinam com a configuração (ou com o `model` recebido) -> ValueError. As mensagens dizem o arquivo.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint não encontrado: {path}. Rode o capítulo que o cria "
                                f"(05-pretreino para o modelo base) ou confira o caminho.")
    try:
        pacote = torch.load(path, map_location=device, weights_only=True)
    except Exception as erro:
        raise ValueError(f"Não consegui ler o checkpoint {path}: o arquivo está corrompido ou não foi salvo "
                         f"com torch.save ({type(erro).__name__}).") from erro
    if not isinstance(pacote, dict) or "config" not in pacote or "model_state_dict" not in pacote:
        raise ValueError(f"{path} não é um checkpoint do curso (faltam 'config' e/ou 'model_state_dict').")
    referencia = "o modelo recebido" if model is not None else "a configuração que ele mesmo declara"
    if model is None:
        try:
            model = GPTModel(pacote["config"])
        except (KeyError, TypeError, ValueError) as erro:
            raise ValueError(f"A configuração guardada em {path} não descreve um GPTModel: {erro!r}.") from erro
    esperado = model.state_dict()
    recebido = pacote["model_state_dict"]
    faltam = sorted(set(esperado) - set(recebido))
    sobram = sorted(set(recebido) - set(esperado))
    formatos = [f"{k}: arquivo {tuple(recebido[k].shape)} x modelo {tuple(v.shape)}"
                for k, v in esperado.items() if k in recebido and recebido[k].shape != v.shape]
    if faltam or sobram or formatos:
        detalhes = "; ".join(filter(None, [
            f"faltam {faltam[:3]}" if faltam else "",
            f"sobram {sobram[:3]}" if sobram else "",
            f"formatos diferentes: {formatos[:3]}" if formatos else ""]))
        raise ValueError(f"O checkpoint {path} não combina com {referencia}: {detalhes}.")
    model.load_state_dict(recebido)
    model.to(device)
    if optimizer is not None:
        if "optimizer_state_dict" not in pacote:
            raise ValueError(f"O checkpoint {path} não guardou o estado do otimizador: não dá para retomar o "
                             f"treino dele (carregue só o modelo, sem optimizer=).")
        try:
            optimizer.load_state_dict(pacote["optimizer_state_dict"])
        except (ValueError, KeyError) as erro:
            raise ValueError(f"O estado do otimizador em {path} não combina com o otimizador recebido: {erro}") \
                from erro
    return model, pacote


# %% 05-pretreino/notebook.ipynb · célula 33
def base_checkpoint_path(mode: str | None = None) -> Path:
    """Onde o capítulo 05 guarda o modelo base pré-treinado de cada modo (em artefatos/checkpoints/)."""
    return artifacts_dir() / "checkpoints" / f"05-pretreino-{mode or get_mode()}.pt"


def pretrain_base_model(mode: str | None = None, device=None, seed: int = 123):
    """Pré-treina o modelo base do modo escolhido e o salva em base_checkpoint_path(mode).

    Devolve (model, historico): as perdas medidas durante o treino, os tokens vistos, as perdas finais
    (`train_loss` em 10 lotes de treino, `val_loss` na validação inteira) e o tempo de treino em segundos.
    """
    mode = mode or get_mode()
    device = device or get_device()
    cfg = PRETRAIN_SETTINGS[mode]
    set_seed(seed)
    train_loader, val_loader = create_pretraining_loaders(mode)
    model = GPTModel(cfg["model"]).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    inicio = time.perf_counter()
    train_losses, val_losses, tokens = train_model_simple(
        model, train_loader, val_loader, optimizer, device, cfg["num_epochs"], cfg["eval_freq"], cfg["eval_iter"],
        "Capitu olhou para mim e", tiktoken.get_encoding("gpt2"), max_seconds=cfg["max_seconds"],
        max_steps=cfg["max_steps"])
    tempo_s = time.perf_counter() - inicio
    model.eval()
    with torch.no_grad():
        val_loss = calc_loss_loader(val_loader, model, device)
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=10)
    historico = {"train_losses": train_losses, "val_losses": val_losses, "tokens_seen": tokens,
                 "train_loss": train_loss, "val_loss": val_loss, "tempo_s": tempo_s, "modo": mode}
    save_checkpoint(base_checkpoint_path(mode), model, optimizer, cfg["model"], historico=historico)
    return model, historico


# %% 05-pretreino/notebook.ipynb · célula 55
def generate(model, idx: torch.Tensor, max_new_tokens: int, context_size: int, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, eos_id: int | None = None) -> torch.Tensor:
    """Gera até `max_new_tokens` tokens depois de `idx` (formato (lote, n)) e devolve a sequência inteira.

    temperature=0 é a escolha gulosa (top_k e top_p são ignorados); com temperature > 0, os logits são divididos
    pela temperatura, filtrados por top-k e depois por top-p (núcleo), e o próximo token é sorteado.
    Só os últimos `context_size` tokens entram no modelo. Com `eos_id`, para quando todas as sequências do lote
    geram esse token (ele não é incluído). O modelo roda em modo de avaliação e volta ao modo em que estava.
    """
    if idx.dim() != 2:
        raise ValueError(f"O prompt deve ter formato (lote, n_tokens), mas chegou {tuple(idx.shape)}: "
                         f"use text_to_token_ids(texto, tokenizer).")
    if idx.shape[1] == 0:
        raise ValueError("O prompt está vazio: escreva pelo menos uma palavra (o modelo precisa de um token "
                         "para começar).")
    if temperature < 0:
        raise ValueError(f"temperature={temperature}: a temperatura não pode ser negativa (0 = escolha gulosa).")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k={top_k}: precisa ser pelo menos 1.")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p={top_p}: precisa estar no intervalo (0, 1].")
    estava_treinando = model.training
    model.eval()
    try:
        for _ in range(max_new_tokens):
            with torch.no_grad():
                logits = model(idx[:, -context_size:])[:, -1, :]     # (lote, vocabulário)
            if temperature > 0.0:
                logits = logits / temperature
                if top_k is not None:
                    corte = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                    logits = logits.masked_fill(logits < corte, float("-inf"))
                if top_p is not None and top_p < 1.0:
                    ordenados, indices = torch.sort(logits, descending=True, dim=-1)
                    probs = torch.softmax(ordenados, dim=-1)
                    remover = torch.cumsum(probs, dim=-1) - probs >= top_p   # o primeiro token nunca sai
                    ordenados = ordenados.masked_fill(remover, float("-inf"))
                    logits = torch.full_like(logits, float("-inf")).scatter(-1, indices, ordenados)
                idx_next = torch.multinomial(torch.softmax(logits, dim=-1), num_samples=1)
            else:
                idx_next = torch.argmax(logits, dim=-1, keepdim=True)
            if eos_id is not None and bool((idx_next == eos_id).all()):
                break
            idx = torch.cat((idx, idx_next), dim=1)
    finally:
        model.train(estava_treinando)
    return idx


# %% 05-pretreino/notebook.ipynb · célula 64
GPT2_SIZES = {
    "gpt2": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},
    "gpt2-medium": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},
    "gpt2-large": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},
    "gpt2-xl": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},
}
GPT2_WEIGHTS_URL = "https://huggingface.co/openai-community/{size}/resolve/main/model.safetensors"


def gpt2_config(size: str = "gpt2") -> dict:
    """Configuração do GPTModel para um tamanho do GPT-2 (contexto 1024, qkv_bias=True como o original)."""
    if size not in GPT2_SIZES:
        raise ValueError(f"Tamanho {size!r} desconhecido. Opções: {', '.join(GPT2_SIZES)}.")
    return {"vocab_size": 50257, "context_length": 1024, "drop_rate": 0.0, "qkv_bias": True, **GPT2_SIZES[size]}


def _require_safetensors() -> None:
    """Levanta ImportError com a instrução de instalação se o pacote safetensors não estiver disponível."""
    try:
        import safetensors  # noqa: F401
    except ImportError as erro:
        raise ImportError("Os pesos do GPT-2 vêm no formato safetensors: instale o pacote com "
                          "`pip install safetensors` e rode a célula de novo.") from erro


def _check_gpt2_safetensors(path: Path) -> None:
    """Confere que o arquivo é um safetensors legível com as chaves do GPT-2; levanta erro se não for."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as arquivo:
        chaves = {k.removeprefix("transformer.") for k in arquivo.keys()}
    if not {"wte.weight", "h.0.attn.c_attn.weight"} <= chaves:
        raise ValueError("o arquivo não tem as chaves do GPT-2 (wte.weight, h.0.attn.c_attn.weight)")


def download_gpt2_weights(size: str = "gpt2") -> Path:
    """Baixa (uma vez) o `model.safetensors` do GPT-2 do Hugging Face e devolve o caminho no cache.

    Usa o espelho local (LLM_DADOS_ESPELHO, arquivo `gpt2-pesos/<size>/model.safetensors`) se houver. Falhas de
    rede ou arquivo inválido levantam DownloadError em português, sem deixar nada incompleto no cache.
    """
    gpt2_config(size)
    _require_safetensors()
    url = GPT2_WEIGHTS_URL.format(size=size)
    return download_file(url, cache_dir() / "gpt2-pesos" / size / "model.safetensors",
                         mirror_name=f"gpt2-pesos/{size}/model.safetensors", validate=_check_gpt2_safetensors,
                         timeout=60)


def load_gpt2(size: str = "gpt2", device="cpu") -> "GPTModel":
    """GPTModel com os pesos originais do GPT-2 (baixados uma vez, depois lidos do cache), em modo de avaliação."""
    caminho = download_gpt2_weights(size)
    from safetensors.torch import load_file

    model = GPTModel(gpt2_config(size))
    load_weights_into_gpt(model, load_file(str(caminho)))
    return model.to(device).eval()


# %% 05-pretreino/notebook.ipynb · célula 72
BASE_SOURCES = ("auto", "checkpoint", "gpt2", "pretrain")


def load_base_model(mode: str | None = None, device=None, source: str = "auto"):
    """Modelo base para os capítulos 06–08, em modo de avaliação. Devolve (model, config, fonte).

    source='auto': o checkpoint do capítulo 05 deste modo, se existir e servir; senão, no modo completo, os
    pesos do GPT-2 124M; senão, um pré-treino rápido (salvo para a próxima vez).
    source='checkpoint' | 'gpt2' | 'pretrain' força uma das três fontes (e falha com erro claro se ela falhar).
    `fonte` é 'checkpoint', 'gpt2' ou 'pretrain'.
    """
    if source not in BASE_SOURCES:
        raise ValueError(f"source={source!r} não existe. Opções: {', '.join(BASE_SOURCES)}.")
    mode = mode or get_mode()
    device = device or get_device()
    caminho = base_checkpoint_path(mode)
    if source in ("auto", "checkpoint"):
        try:
            model, pacote = load_checkpoint(caminho, device)
            if pacote["config"].get("vocab_size") != 50257:
                raise ValueError(f"o checkpoint {caminho.name} não usa o vocabulário do GPT-2 (50257 tokens).")
            print(f"Modelo base: checkpoint do capítulo 05 ({caminho.name}).")
            return model.eval(), pacote["config"], "checkpoint"
        except (FileNotFoundError, ValueError) as erro:
            if source == "checkpoint":
                raise
            if caminho.exists():
                print(f"O checkpoint {caminho.name} não serve ({erro}); vou usar outra fonte.")
    if source == "gpt2" or (source == "auto" and mode == "completo"):
        try:
            model = load_gpt2("gpt2", device)
            print("Modelo base: pesos originais do GPT-2 124M (OpenAI).")
            return model, gpt2_config("gpt2"), "gpt2"
        except (DownloadError, ImportError) as erro:
            if source == "gpt2":
                raise
            print(f"Sem os pesos do GPT-2 ({erro}); vou pré-treinar um modelo.")
    print(f"Modelo base: pré-treinando um modelo no modo {mode} agora "
          f"(até {PRETRAIN_SETTINGS[mode]['max_seconds']} s de treino)...")
    model, _ = pretrain_base_model(mode, device)
    return model.eval(), dict(PRETRAIN_SETTINGS[mode]["model"]), "pretrain"
