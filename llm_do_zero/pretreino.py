"""Capítulo 05-pretreino: o código que o capítulo ensina e os seguintes reutilizam.

ARQUIVO GERADO por `python ferramentas/exportar.py` a partir das células `# exportar` de
`05-pretreino/notebook.ipynb`. Não edite à mão: mude o notebook e gere de novo.
"""
import contextlib
import json
import math
from pathlib import Path
import time

import tiktoken
import torch

from llm_do_zero.oficina import (
    amp_settings, artifacts_dir, cache_dir, download_file, DownloadError, get_device, get_mode,
    gpu_peak_memory, mode_settings, progress_bar, project_root, set_seed, sha256_of,
)
from llm_do_zero.estatistica import load_text, MACHADO_BOOKS
from llm_do_zero.tokens import (
    course_tokenizer, COURSE_VOCAB_SIZE, create_dataloader, GPT2_SPLIT_PATTERN, HELD_OUT_BOOKS,
)
from llm_do_zero.gpt import (
    generate_text_simple, GPTModel, load_weights_into_gpt, text_to_token_ids, token_ids_to_text,
)


# %% 05-pretreino/notebook.ipynb · célula 6
PRETRAIN_SETTINGS = {
    "rapido": {
        "model": {"vocab_size": COURSE_VOCAB_SIZE, "context_length": 128, "emb_dim": 128, "n_heads": 4,
                  "n_layers": 2, "drop_rate": 0.0, "qkv_bias": False},
        "val_books": ["memorial-de-aires"],
        "batch_size": 8, "lr": 6e-3, "min_lr": 6e-4, "warmup_steps": 40, "grad_clip": 1.0, "weight_decay": 0.1,
        "num_epochs": 2, "max_steps": 1200, "max_seconds": 600, "eval_freq": 100, "eval_iter": 4,
        "train_chars": None, "val_chars": None,            # quanto texto usar (None: os livros inteiros)
    },
    "completo": {
        "model": {"vocab_size": COURSE_VOCAB_SIZE, "context_length": 256, "emb_dim": 512, "n_heads": 8,
                  "n_layers": 8, "drop_rate": 0.1, "qkv_bias": False},
        "val_books": ["memorial-de-aires", "reliquias"],
        "batch_size": 16, "lr": 6e-4, "min_lr": 6e-5, "warmup_steps": 200, "grad_clip": 1.0, "weight_decay": 0.1,
        "num_epochs": 4, "max_steps": None, "max_seconds": 1800, "eval_freq": 200, "eval_iter": 20,
        "train_chars": None, "val_chars": None,
    },
}

# O que a execução do capítulo tem de reproduzir (capítulo 00, seção 8). As contagens são exatas; o que vem de um
# treino tem tolerância: a mesma receita, em outra máquina, move a perda em alguns milésimos de bit por caractere.
PRETRAIN_CHECKS = {
    "capitulo": "05-pretreino",
    "tolerancias": {"val_loss": 0.08, "train_loss": 0.08, "perplexidade_val": (0.0, 0.08),
                    "val_bits_por_caractere": 0.03, "diferenca_gpt_bigrama_ic95": 0.08,
                    "bigrama_mesmas_janelas_bits_por_caractere": 0.01, "base_06_08_bits_por_caractere": 0.002,
                    "tempo_treino_min": None},
    "conclusoes": {
        "o GPT do capítulo vence a tabela de bigramas no livro de validação":
            "val_bits_por_caractere < bigrama_bits_por_caractere",
        "a diferença para a tabela está fora do ruído da validação": "diferenca_gpt_bigrama_ic95[1] < 0",
        "com o mesmo texto lido, o GPT vence a tabela contada nas mesmas janelas":
            "val_bits_por_caractere < bigrama_mesmas_janelas_bits_por_caractere",
        "o modelo base dos capítulos 06–08 fica 0,10 bit/caractere abaixo da tabela":
            "base_06_08_bits_por_caractere <= bigrama_bits_por_caractere - 0.10",
    },
}
TRAIN_BOOKS = [livro for livro in MACHADO_BOOKS if livro not in HELD_OUT_BOOKS]


def load_pretraining_texts(mode: str | None = None, settings: dict | None = None) -> tuple[str, str]:
    """Textos de treino e validação do pré-treino, separados por livro: nenhum trecho da validação está no treino.

    Treino: os livros de Machado fora os dois guardados (HELD_OUT_BOOKS); validação: `val_books` do modo
    (só livros guardados). Os livros de cada lado são unidos pelo token especial <|endoftext|>. `settings` troca
    as configurações do modo por outras no mesmo formato.
    """
    cfg = settings or mode_settings(PRETRAIN_SETTINGS, mode)
    separador = "<|endoftext|>"
    return (separador.join(load_text(b) for b in TRAIN_BOOKS)[:cfg["train_chars"]],
            separador.join(load_text(b) for b in cfg["val_books"])[:cfg["val_chars"]])


def create_pretraining_loaders(mode: str | None = None, tokenizer=None, settings: dict | None = None):
    """Carregadores (treino, validação) de janelas sem sobreposição, com o tokenizador do curso."""
    cfg = settings or mode_settings(PRETRAIN_SETTINGS, mode)
    tokenizer = tokenizer or course_tokenizer()
    texto_treino, texto_val = load_pretraining_texts(mode, cfg)
    ctx = cfg["model"]["context_length"]
    train_loader = create_dataloader(texto_treino, cfg["batch_size"], ctx, ctx, shuffle=True, drop_last=True,
                                     tokenizer=tokenizer)
    val_loader = create_dataloader(texto_val, cfg["batch_size"], ctx, ctx, shuffle=False, drop_last=False,
                                   tokenizer=tokenizer)
    return train_loader, val_loader


# %% 05-pretreino/notebook.ipynb · célula 23
BIGRAM_K_CANDIDATES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)   # os k do add-k que experimentamos


def unigram_loss(train_ids, val_ids, vocab_size: int, alpha: float = 0.1) -> float:
    """Entropia cruzada (nats/token) na validação de um modelo que só conhece a frequência de cada token."""
    contagens = torch.bincount(torch.as_tensor(train_ids), minlength=vocab_size).double() + alpha
    log_p = torch.log(contagens / contagens.sum())
    return -log_p[torch.as_tensor(val_ids)].mean().item()


def bigram_pair_losses(train_prev, train_next, val_prev, val_next, vocab_size: int, k: float) -> torch.Tensor:
    """-log p(b | a) de cada par (a, b) da validação numa tabela de bigramas add-k contada nos pares de treino.

    p(b | a) = (c(a, b) + k) / (c(a) + k·V). Os pares vistos ficam numa lista ordenada (uma tabela densa de
    V × V números não caberia na memória com vocabulários grandes); os pares da validação são procurados nela.
    """
    a, b = torch.as_tensor(train_prev).long(), torch.as_tensor(train_next).long()
    va, vb = torch.as_tensor(val_prev).long(), torch.as_tensor(val_next).long()
    pares, contagens = torch.unique(a * vocab_size + b, return_counts=True)
    linhas = torch.bincount(a, minlength=vocab_size).double()
    consulta = va * vocab_size + vb
    posicao = torch.searchsorted(pares, consulta).clamp(max=len(pares) - 1)
    vistos = torch.where(pares[posicao] == consulta, contagens[posicao], 0).double()
    return -((vistos + k) / (linhas[va] + k * vocab_size)).log()


def bigram_token_losses(train_ids, val_ids, vocab_size: int, k: float) -> torch.Tensor:
    """-log p(b | a) de cada token da validação (menos o primeiro), com a tabela contada no texto de treino."""
    treino, val = torch.as_tensor(train_ids), torch.as_tensor(val_ids)
    return bigram_pair_losses(treino[:-1], treino[1:], val[:-1], val[1:], vocab_size, k)


def bigram_loss(train_ids, val_ids, vocab_size: int, k: float) -> float:
    """Entropia cruzada média (nats/token) da tabela de bigramas add-k na validação."""
    return bigram_token_losses(train_ids, val_ids, vocab_size, k).mean().item()


def best_bigram_k(train_ids, vocab_size: int, candidates=None) -> float:
    """O k do add-k escolhido sem olhar a validação: conta em 90% do treino e mede nos 10% finais."""
    corte = int(len(train_ids) * 0.9)
    return min(candidates or BIGRAM_K_CANDIDATES,
               key=lambda k: bigram_loss(train_ids[:corte], train_ids[corte:], vocab_size, k))


def bits_per_char(nats_per_token: float, n_tokens: int, n_chars: int) -> float:
    """Converte uma perda média em nats por token para bits por caractere do mesmo texto."""
    return nats_per_token / math.log(2) * n_tokens / n_chars


def bigram_loss_on_windows(windows, val_ids, vocab_size: int) -> tuple[float, float]:
    """A tabela de bigramas contada só nos pares de dentro de `windows` (uma janela por linha, como o GPT as leu).

    O k é escolhido nessas mesmas janelas (conta em 90% delas, mede nos 10% restantes), então ele se ajusta à
    quantidade de texto: pouco texto pede mais suavização. Uma janela lida de novo (numa segunda época) entra uma
    vez só: para uma contagem, reler o mesmo texto não ensina nada. Devolve (perda média na validação inteira, k).
    """
    janelas = torch.as_tensor(windows).long()
    _, inverso = torch.unique(janelas, dim=0, return_inverse=True)
    primeira = torch.full((int(inverso.max()) + 1,), len(janelas)).scatter_reduce(
        0, inverso, torch.arange(len(janelas)), reduce="amin")
    janelas = janelas[primeira.sort().values]                 # cada janela uma vez, na ordem em que foi lida
    corte = max(1, int(len(janelas) * 0.9))
    val = torch.as_tensor(val_ids)

    def pares(x):
        return x[:, :-1].flatten(), x[:, 1:].flatten()

    def perda(k):
        return bigram_pair_losses(*pares(janelas[:corte]), *pares(janelas[corte:]), vocab_size, k).mean().item()

    k = min(BIGRAM_K_CANDIDATES, key=perda) if corte < len(janelas) else 1.0
    return bigram_pair_losses(*pares(janelas), val[:-1], val[1:], vocab_size, k).mean().item(), k


# %% 05-pretreino/notebook.ipynb · célula 30
def autocast_context(device, dtype: torch.dtype | None):
    """O `torch.autocast` do dispositivo quando há um tipo de precisão mista; senão um contexto que não faz nada.

    Sem tipo, nem chega a criar o autocast (versões antigas do torch recusam `autocast("mps")` mesmo desligado).
    """
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


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
    with autocast_context(device, amp_settings(device)[0]):      # na GPU, a precisão mista do treino
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


# %% 05-pretreino/notebook.ipynb · célula 32
def batch_size_of(batch) -> tuple[int, int]:
    """(tokens, exemplos) de um lote (entrada, alvo) de tensores; para outros lotes, (0, len(lote))."""
    entrada = batch[0] if isinstance(batch, (tuple, list)) and batch and torch.is_tensor(batch[0]) else None
    if entrada is None:
        return 0, len(batch)
    return entrada.numel(), entrada.shape[0]


def train_loop(model, optimizer, batches, device, loss_fn, *, num_epochs: int = 1, max_steps: int | None = None,
               lr_schedule=None, grad_clip: float | None = None, eval_freq: int | None = None, eval_steps=(),
               evaluate=None, on_epoch_end=None, max_seconds: float | None = None, desc: str = "treino") -> dict:
    """O laço de treino do curso: os capítulos 05–08 o chamam, cada um com a sua perda.

    A cada passo (contados 1, 2, …): taxa de aprendizado `lr_schedule(passo - 1)`, zerar gradientes,
    `loss_fn(lote)` sob a precisão mista de `amp_settings` (capítulo 00), `backward`, corte do gradiente
    (`grad_clip`) e passo do otimizador. `batches` é percorrido uma vez por época (um DataLoader ou uma lista).
    Avalia depois do passo 1, a cada `eval_freq` passos, nos passos de `eval_steps` e no último: `evaluate(passo)`
    devolve um dicionário de números, guardado em `avaliacoes` com o passo, os tokens e os exemplos vistos.
    `on_epoch_end(epoca, barra, historico)` roda no fim de cada época, inclusive da que foi interrompida.
    Para em `max_steps` (sempre no mesmo passo, em qualquer máquina), no fim das épocas ou, como rede de segurança
    para máquinas lentas, em `max_seconds` (com aviso). Na GPU, zera o pico de memória no começo e o imprime no fim.
    Devolve {'passos', 'tokens', 'exemplos', 'perdas' (de cada passo), 'avaliacoes', 'motivo', 'tempo_s'}.
    """
    tipo_amp, usa_scaler = amp_settings(device)
    scaler = torch.amp.GradScaler("cuda", enabled=usa_scaler)
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    total = num_epochs * len(batches) if max_steps is None else min(max_steps, num_epochs * len(batches))
    historico = {"passos": 0, "tokens": 0, "exemplos": 0, "perdas": [], "avaliacoes": [], "motivo": None}
    marcados = set(eval_steps)
    inicio = time.perf_counter()
    barra = progress_bar(total=total, desc=desc, unit="passo")
    for epoca in range(1, num_epochs + 1):
        model.train()
        for lote in batches:
            passo = historico["passos"] + 1
            if lr_schedule is not None:
                for grupo in optimizer.param_groups:
                    grupo["lr"] = lr_schedule(passo - 1)
            optimizer.zero_grad()
            with autocast_context(device, tipo_amp):
                loss = loss_fn(lote)
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
            tokens, exemplos = batch_size_of(lote)
            historico.update(passos=passo, tokens=historico["tokens"] + tokens,
                             exemplos=historico["exemplos"] + exemplos)
            historico["perdas"].append(loss.item())
            barra.update(1)
            if passo >= total:
                historico["motivo"] = f"{passo} passos"
            elif max_seconds is not None and time.perf_counter() - inicio > max_seconds:
                historico["motivo"] = (f"aviso: o limite de segurança de {max_seconds:.0f} s parou o treino no "
                                       f"passo {passo} de {total}; os números serão diferentes dos de referência")
            na_vez = (eval_freq is not None and (passo - 1) % eval_freq == 0) or passo in marcados
            if evaluate is not None and (na_vez or historico["motivo"]):
                model.eval()
                with torch.no_grad():
                    metricas = evaluate(passo)
                model.train()
                historico["avaliacoes"].append({"passo": passo, "tokens": historico["tokens"],
                                                "exemplos": historico["exemplos"], **metricas})
                barra.set_postfix({nome: f"{valor:.3f}" for nome, valor in metricas.items()})
            if historico["motivo"]:
                break
        if on_epoch_end is not None:
            model.eval()
            on_epoch_end(epoca, barra, historico)
            model.train()
        if historico["motivo"]:
            break
    if historico["motivo"] and historico["motivo"].startswith("aviso"):
        barra.write(historico["motivo"])
    if gpu_peak_memory(device):
        barra.write(gpu_peak_memory(device))
    barra.close()
    model.eval()
    historico["tempo_s"] = time.perf_counter() - inicio
    return historico


# %% 05-pretreino/notebook.ipynb · célula 34
def train_model_simple(model, train_loader, val_loader, optimizer, device, num_epochs: int, eval_freq: int,
                       eval_iter: int, start_context: str, tokenizer, max_seconds: float | None = None,
                       max_steps: int | None = None, lr_schedule=None, grad_clip: float | None = None,
                       eval_steps=(), extra_eval=None, record_windows: list | None = None):
    """Pré-treino com o `train_loop`: a perda é `calc_loss_batch`; a cada avaliação, `eval_iter` lotes de treino e
    de validação (`evaluate_model`); no fim de cada época, uma amostra gulosa que começa em `start_context`.

    `extra_eval(passo)`, se dado, é chamado em cada avaliação (a cada `eval_freq` passos e nos de `eval_steps`),
    para medir algo a mais — quem o passa guarda o que mediu. `record_windows`, se for uma lista, recebe as janelas
    de cada lote de treino (entrada + o último alvo, em int32), na ordem em que o modelo as leu. O resto vai
    direto para o `train_loop`.
    Devolve (train_losses, val_losses, track_tokens_seen), como no livro: as perdas de cada avaliação e os tokens
    vistos em cada uma.
    """
    def perda(lote):
        if record_windows is not None:
            record_windows.append(torch.cat([lote[0], lote[1][:, -1:]], dim=1).to(torch.int32))
        return calc_loss_batch(*lote, model, device)

    def avaliar(passo):
        if extra_eval is not None:
            extra_eval(passo)
        treino, val = evaluate_model(model, train_loader, val_loader, device, eval_iter)
        return {"treino": treino, "val": val}

    def fim_da_epoca(epoca, barra, historico):
        barra.write(f"época {epoca}, passo {historico['passos']}:")
        with barra.external_write_mode():          # a amostra sai numa linha própria, fora do desenho da barra
            generate_and_print_sample(model, tokenizer, device, start_context)

    historico = train_loop(model, optimizer, train_loader, device, perda, num_epochs=num_epochs,
                           max_steps=max_steps, lr_schedule=lr_schedule, grad_clip=grad_clip, eval_freq=eval_freq,
                           eval_steps=eval_steps, evaluate=avaliar, on_epoch_end=fim_da_epoca,
                           max_seconds=max_seconds, desc="pré-treino")
    avaliacoes = historico["avaliacoes"]
    return [a["treino"] for a in avaliacoes], [a["val"] for a in avaliacoes], [a["tokens"] for a in avaliacoes]


# %% 05-pretreino/notebook.ipynb · célula 38
def warmup_cosine_lr(step: int, total_steps: int, peak_lr: float, min_lr: float, warmup_steps: int) -> float:
    """Taxa de aprendizado do passo `step` (0, 1, …): sobe em linha reta até `peak_lr` em `warmup_steps` passos,
    depois desce em meia onda de cosseno até `min_lr` no passo `total_steps` (e fica lá)."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progresso = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + 0.5 * (peak_lr - min_lr) * (1 + math.cos(math.pi * progresso))


# %% 05-pretreino/notebook.ipynb · célula 43
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

def tokenizer_state(tokenizer) -> dict:
    """O tokenizador como dados simples, para viajar dentro de um checkpoint (legível com weights_only=True).

    O do GPT-2 vai só pelo nome (o tiktoken o conhece). Os nossos levam os bytes de cada token em ordem de id,
    num tensor só, mais os tokens especiais: é tudo o que o tiktoken precisa para refazer o mesmo tokenizador.
    """
    if tokenizer.name == "gpt2":
        return {"tiktoken": "gpt2"}
    especiais = {tok: tokenizer.encode_single_token(tok) for tok in sorted(tokenizer.special_tokens_set)}
    comuns = [tokenizer.decode_single_token_bytes(i) for i in range(tokenizer.n_vocab)
              if i not in especiais.values()]
    return {"nome": tokenizer.name, "pat_str": GPT2_SPLIT_PATTERN, "special_tokens": especiais,
            "token_bytes": torch.tensor(list(b"".join(comuns)), dtype=torch.uint8),
            "token_lengths": torch.tensor([len(t) for t in comuns], dtype=torch.int32)}


def tokenizer_from_state(state: dict) -> tiktoken.Encoding:
    """Refaz o tokenizador guardado por `tokenizer_state` (ids idênticos aos do original)."""
    if "tiktoken" in state:
        return tiktoken.get_encoding(state["tiktoken"])
    dados = bytes(state["token_bytes"].tolist())
    ranks, inicio = {}, 0
    for i, tamanho in enumerate(state["token_lengths"].tolist()):
        ranks[dados[inicio:inicio + tamanho]] = i
        inicio += tamanho
    return tiktoken.Encoding(state["nome"], pat_str=state["pat_str"], mergeable_ranks=ranks,
                             special_tokens=dict(state["special_tokens"]))


# %% 05-pretreino/notebook.ipynb · célula 47
def base_checkpoint_path(mode: str | None = None) -> Path:
    """Onde o capítulo 05 guarda o modelo base pré-treinado de cada modo (em artefatos/checkpoints/)."""
    return artifacts_dir() / "checkpoints" / f"05-pretreino-{mode or get_mode()}.pt"


def full_eval_steps(total: int, settings: dict) -> list[int]:
    """Passos em que o pré-treino mede a validação inteira: os de `full_eval_steps`, ou 1/8, 1/4, 1/2 e o fim."""
    return sorted(set(settings.get("full_eval_steps") or (max(1, total // d) for d in (8, 4, 2))) | {total})


def pretrain_base_model(mode: str | None = None, device=None, seed: int = 123, settings: dict | None = None,
                        save: bool = True):
    """Pré-treina o modelo base do modo escolhido, com o tokenizador do curso, e o salva em base_checkpoint_path(mode).

    AdamW com aquecimento + decaimento em cosseno (`warmup_cosine_lr`) e corte do gradiente. O checkpoint leva
    o tokenizador junto. `settings` troca as configurações do modo por outras no mesmo formato (as do modelo base
    do curso, por exemplo); `save=False` não grava nada. Devolve (model, historico): as perdas medidas durante o
    treino, os tokens vistos, a perda na validação **inteira** em alguns passos (`val_inteira`), as janelas de
    treino na ordem em que o modelo as leu (`janelas`, uma por linha), as perdas finais (`train_loss` em 10 lotes
    de treino, `val_loss` na validação inteira) e o tempo de treino.
    """
    mode = mode or get_mode()
    device = device or get_device()
    cfg = settings or mode_settings(PRETRAIN_SETTINGS, mode)
    set_seed(seed)
    tokenizer = course_tokenizer()
    train_loader, val_loader = create_pretraining_loaders(mode, tokenizer, settings=cfg)
    model = GPTModel(cfg["model"]).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    total = cfg["num_epochs"] * len(train_loader)
    total = total if cfg["max_steps"] is None else min(total, cfg["max_steps"])
    medir_inteira = full_eval_steps(total, cfg)
    val_inteira = {"passos": [], "tokens": [], "perdas": []}
    janelas = []

    def validacao_inteira(passo):
        if passo in medir_inteira:
            val_inteira["passos"].append(passo)
            val_inteira["tokens"].append(passo * cfg["batch_size"] * cfg["model"]["context_length"])
            val_inteira["perdas"].append(calc_loss_loader(val_loader, model, device))

    inicio = time.perf_counter()
    train_losses, val_losses, tokens = train_model_simple(
        model, train_loader, val_loader, optimizer, device, cfg["num_epochs"], cfg["eval_freq"], cfg["eval_iter"],
        "Capitu olhou para mim e", tokenizer, max_seconds=cfg["max_seconds"], max_steps=cfg["max_steps"],
        lr_schedule=lambda passo: warmup_cosine_lr(passo, total, cfg["lr"], cfg["min_lr"], cfg["warmup_steps"]),
        grad_clip=cfg["grad_clip"], eval_steps=medir_inteira, extra_eval=validacao_inteira, record_windows=janelas)
    tempo_s = time.perf_counter() - inicio
    model.eval()
    with torch.no_grad():
        ultimo = val_inteira["passos"][-1:] == [len(janelas)]
        val_loss = val_inteira["perdas"][-1] if ultimo else calc_loss_loader(val_loader, model, device)
        train_loss = calc_loss_loader(train_loader, model, device, num_batches=10)
    historico = {"train_losses": train_losses, "val_losses": val_losses, "tokens_seen": tokens,
                 "train_loss": train_loss, "val_loss": val_loss, "tempo_s": tempo_s, "modo": mode,
                 "passos": len(janelas), "val_inteira": val_inteira}
    if save:
        save_checkpoint(base_checkpoint_path(mode), model, optimizer, cfg["model"],
                        tokenizer=tokenizer_state(tokenizer), historico=historico)
    historico["janelas"] = torch.cat(janelas)
    return model, historico


# %% 05-pretreino/notebook.ipynb · célula 56
COURSE_BASE_SETTINGS = {
    "model": {"vocab_size": COURSE_VOCAB_SIZE, "context_length": 128, "emb_dim": 256, "n_heads": 4, "n_layers": 2,
              "drop_rate": 0.0, "qkv_bias": False},
    "val_books": ["memorial-de-aires"],
    "batch_size": 8, "lr": 4e-3, "min_lr": 4e-4, "warmup_steps": 40, "grad_clip": 1.0, "weight_decay": 0.1,
    "num_epochs": 3, "max_steps": 3200, "max_seconds": None, "eval_freq": 200, "eval_iter": 4,
    "full_eval_steps": [200, 400, 800, 1200, 1600, 2000, 2400, 2800, 3200], "train_chars": None, "val_chars": None,
}
COURSE_BASE_FILE = "modelo-base-curso.safetensors"


def course_base_dir() -> Path:
    """Pasta do modelo base do curso, versionada no repositório: `05-pretreino/modelo-base/`."""
    return project_root() / "05-pretreino" / "modelo-base"


def save_course_base_model(path: str | Path, model, config: dict, tokenizer) -> Path:
    """Grava pesos e tokenizador num arquivo safetensors só (escrita atômica: `.part` e depois renomeia)."""
    from safetensors.torch import save_file
    path = Path(path)
    estado = tokenizer_state(tokenizer)
    tensores = {nome: t.detach().cpu().contiguous() for nome, t in model.state_dict().items()}
    tensores["tokenizer.token_bytes"] = estado["token_bytes"]
    tensores["tokenizer.token_lengths"] = estado["token_lengths"]
    metadados = {"config": json.dumps(config), "tokenizer_nome": estado["nome"], "pat_str": estado["pat_str"],
                 "special_tokens": json.dumps(estado["special_tokens"])}
    temporario = path.with_name(path.name + ".part")
    save_file(tensores, temporario, metadata=metadados)
    temporario.replace(path)
    return path


def load_course_base_model(device="cpu", folder: str | Path | None = None):
    """O modelo base do curso: (model, tokenizer, config, 'curso'), com o sha256 do arquivo conferido no cartão.

    Arquivo ou cartão ausentes -> FileNotFoundError; hash diferente do cartão (arquivo corrompido ou trocado) ->
    ValueError. As mensagens dizem o que fazer.
    """
    from safetensors import safe_open
    pasta = Path(folder) if folder is not None else course_base_dir()
    arquivo, cartao = pasta / COURSE_BASE_FILE, pasta / "cartao.json"
    if not arquivo.is_file() or not cartao.is_file():
        raise FileNotFoundError(f"O modelo base do curso não está em {pasta} (faltam {COURSE_BASE_FILE} e/ou "
                                f"cartao.json). Ele vem com o repositório: confira o clone, ou recrie-o com "
                                f"`python ferramentas/treinar_modelo_base.py`.")
    esperado = json.loads(cartao.read_text(encoding="utf-8"))["sha256"]
    obtido = sha256_of(arquivo)
    if obtido != esperado:
        raise ValueError(f"{arquivo.name} não confere com o cartão (sha256 {obtido[:12]}… em vez de "
                         f"{esperado[:12]}…): o arquivo está corrompido ou foi trocado. Baixe-o de novo com o "
                         f"repositório (git checkout -- {arquivo.name}) ou recrie-o.")
    with safe_open(str(arquivo), framework="pt") as f:
        metadados = f.metadata()
        tensores = {nome: f.get_tensor(nome) for nome in f.keys()}
    config = json.loads(metadados["config"])
    tokenizer = tokenizer_from_state({"nome": metadados["tokenizer_nome"], "pat_str": metadados["pat_str"],
                                      "special_tokens": json.loads(metadados["special_tokens"]),
                                      "token_bytes": tensores.pop("tokenizer.token_bytes"),
                                      "token_lengths": tensores.pop("tokenizer.token_lengths")})
    model = GPTModel(config)
    model.load_state_dict(tensores)
    return model.to(device).eval(), tokenizer, config, "curso"


# %% 05-pretreino/notebook.ipynb · célula 75
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


# %% 05-pretreino/notebook.ipynb · célula 85
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


def gpt2_expected_shapes(size: str = "gpt2") -> dict[str, tuple[int, ...]]:
    """Os pesos do `model.safetensors` do GPT-2 no Hugging Face: nome -> formato, para um dos quatro tamanhos.

    As camadas Conv1D do GPT-2 guardam (entrada, saída); a projeção QKV vem fundida (d, 3d).
    """
    cfg = gpt2_config(size)
    d, v, ctx = cfg["emb_dim"], cfg["vocab_size"], cfg["context_length"]
    formatos = {"wte.weight": (v, d), "wpe.weight": (ctx, d), "ln_f.weight": (d,), "ln_f.bias": (d,)}
    for i in range(cfg["n_layers"]):
        for nome, formato in [("ln_1.weight", (d,)), ("ln_1.bias", (d,)), ("attn.c_attn.weight", (d, 3 * d)),
                              ("attn.c_attn.bias", (3 * d,)), ("attn.c_proj.weight", (d, d)),
                              ("attn.c_proj.bias", (d,)), ("ln_2.weight", (d,)), ("ln_2.bias", (d,)),
                              ("mlp.c_fc.weight", (d, 4 * d)), ("mlp.c_fc.bias", (4 * d,)),
                              ("mlp.c_proj.weight", (4 * d, d)), ("mlp.c_proj.bias", (d,))]:
            formatos[f"h.{i}.{nome}"] = formato
    return formatos


def _check_gpt2_safetensors(path: Path, size: str = "gpt2") -> None:
    """Confere tamanho e cabeçalho do arquivo: todos os pesos do tamanho pedido, com os formatos certos."""
    from safetensors import safe_open

    esperados = gpt2_expected_shapes(size)
    with safe_open(str(path), framework="pt") as arquivo:
        formatos = {k.removeprefix("transformer."): tuple(arquivo.get_slice(k).get_shape()) for k in arquivo.keys()}
    faltam = sorted(set(esperados) - set(formatos))
    errados = [f"{k}: {formatos[k]} em vez de {f}" for k, f in esperados.items() if k in formatos and formatos[k] != f]
    if faltam or errados:
        raise ValueError(f"não é o {size} do GPT-2: " + "; ".join(filter(None, [
            f"faltam {len(faltam)} pesos ({', '.join(faltam[:3])})" if faltam else "",
            f"formatos diferentes ({'; '.join(errados[:3])})" if errados else ""])))
    minimo = 4 * sum(math.prod(f) for f in esperados.values())              # float32: 4 bytes por número
    if path.stat().st_size < minimo:
        raise ValueError(f"o arquivo tem {path.stat().st_size:,} bytes, menos que os {minimo:,} dos pesos")


def download_gpt2_weights(size: str = "gpt2") -> Path:
    """Baixa (uma vez) o `model.safetensors` do GPT-2 do Hugging Face e devolve o caminho no cache.

    Procura antes no espelho local (LLM_DADOS_ESPELHO), no mesmo caminho da URL:
    `openai-community/<size>/model.safetensors`. O arquivo só fica no cache depois de conferido (tamanho e todos
    os pesos do tamanho pedido, com os formatos certos). Falhas de rede ou arquivo inválido levantam DownloadError
    em português, sem deixar nada incompleto no cache.
    """
    gpt2_config(size)
    _require_safetensors()
    url = GPT2_WEIGHTS_URL.format(size=size)
    return download_file(url, cache_dir() / "gpt2-pesos" / size / "model.safetensors",
                         mirror_name=f"openai-community/{size}/model.safetensors",
                         validate=lambda caminho: _check_gpt2_safetensors(caminho, size), timeout=60)


def load_gpt2(size: str = "gpt2", device="cpu") -> "GPTModel":
    """GPTModel com os pesos originais do GPT-2 (baixados uma vez, depois lidos do cache), em modo de avaliação."""
    caminho = download_gpt2_weights(size)
    from safetensors.torch import load_file

    model = GPTModel(gpt2_config(size))
    load_weights_into_gpt(model, load_file(str(caminho)))
    return model.to(device).eval()


# %% 05-pretreino/notebook.ipynb · célula 93
BASE_SOURCES = ("auto", "curso", "checkpoint", "gpt2", "pretrain")


def load_base_model(mode: str | None = None, device=None, source: str = "auto"):
    """Modelo base para os capítulos 06–08, com o tokenizador dele, em modo de avaliação.

    Devolve (model, tokenizer, config, fonte). Um modelo só entende os ids do tokenizador com que foi treinado,
    então os dois andam juntos: o modelo do curso e o checkpoint do capítulo 05 trazem o tokenizador do curso; o
    GPT-2, o do GPT-2. source='auto' segue uma regra só, anunciada com o motivo de cada escolha:
    - modo rápido: (1) o modelo base do curso (`05-pretreino/modelo-base/`, versionado, hash conferido);
      (2) o checkpoint do capítulo 05 no modo rápido; (3) um pré-treino agora, no tamanho rápido;
    - modo completo: (1) o checkpoint do capítulo 05 no modo completo; (2) os pesos do GPT-2 124M; (3) em diante,
      a regra do modo rápido.
    source='curso' | 'checkpoint' | 'gpt2' | 'pretrain' força uma das fontes (e falha com erro claro se ela
    falhar); 'checkpoint' é o do capítulo 05 no modo `mode` — o que você mesmo treinou.
    """
    if source not in BASE_SOURCES:
        raise ValueError(f"source={source!r} não existe. Opções: {', '.join(BASE_SOURCES)}.")
    mode = mode or get_mode()
    device = device or get_device()
    carregado = None
    if source == "checkpoint" or (source == "auto" and mode == "completo"):
        carregado = _try_checkpoint(base_checkpoint_path(mode), device, strict=source == "checkpoint")
    if carregado is None and (source == "gpt2" or (source == "auto" and mode == "completo")):
        carregado = _try_gpt2(device, strict=source == "gpt2")
    if carregado is None and source in ("auto", "curso"):
        carregado = _try_course_base(device, strict=source == "curso")
    if carregado is None and source == "auto":
        carregado = _try_checkpoint(base_checkpoint_path("rapido"), device, strict=False)
    if carregado is not None:
        return carregado
    minutos = PRETRAIN_SETTINGS["rapido"]["max_steps"] / 200          # ~3,5 passos por segundo em 2 núcleos
    print(f"Modelo base: nenhuma fonte pronta, então vou pré-treinar agora o modelo do tamanho rápido (o treino do "
          f"capítulo 05: uns {minutos:.0f} minutos numa CPU de 2 núcleos, menos numa GPU). Ele fica salvo para a "
          f"próxima vez.")
    model, _ = pretrain_base_model("rapido", device)
    return model.eval(), course_tokenizer(), dict(PRETRAIN_SETTINGS["rapido"]["model"]), "pretrain"


def _try_course_base(device, strict: bool):
    """(model, tokenizer, config, 'curso') do modelo base do curso, ou None (com o motivo)."""
    try:
        carregado = load_course_base_model(device)
    except (FileNotFoundError, ValueError, ImportError) as erro:
        if strict:
            raise
        print(f"Modelo base do curso: não serve agora ({erro}).")
        return None
    print(f"Modelo base: o modelo base do curso ({COURSE_BASE_FILE}, sha256 conferido), com o tokenizador "
          f"{carregado[1].name}.")
    return carregado


def _try_checkpoint(caminho: Path, device, strict: bool):
    """(model, tokenizer, config, 'checkpoint') de um checkpoint do capítulo 05, ou None (com o motivo)."""
    try:
        model, pacote = load_checkpoint(caminho, device)
        if "tokenizer" not in pacote:
            raise ValueError(f"o checkpoint {caminho.name} não guarda o tokenizador (é de uma versão antiga do "
                             f"curso); rode o capítulo 05 de novo.")
        tokenizer = tokenizer_from_state(pacote["tokenizer"])
        if tokenizer.n_vocab > pacote["config"]["vocab_size"]:
            raise ValueError(f"o tokenizador de {caminho.name} tem mais tokens que o modelo.")
    except (FileNotFoundError, ValueError) as erro:
        if strict:
            raise
        motivo = f"não serve ({erro})" if caminho.exists() else "ainda não existe"
        print(f"Checkpoint {caminho.name}: {motivo}.")
        return None
    print(f"Modelo base: checkpoint do capítulo 05 ({caminho.name}), com o tokenizador {tokenizer.name}.")
    return model.eval(), tokenizer, pacote["config"], "checkpoint"


def _try_gpt2(device, strict: bool):
    """(model, tokenizer, config, 'gpt2') com os pesos do GPT-2 124M, ou None (com o motivo) se não der."""
    try:
        model = load_gpt2("gpt2", device)
    except (DownloadError, ImportError, ValueError) as erro:
        if strict:
            raise
        print(f"Sem os pesos do GPT-2 ({erro}); sigo para a próxima fonte.")
        return None
    print("Modelo base: pesos originais do GPT-2 124M (OpenAI), com o tokenizador do GPT-2.")
    return model, tiktoken.get_encoding("gpt2"), gpt2_config("gpt2"), "gpt2"
