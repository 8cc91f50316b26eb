"""Capítulo 07-instrucoes: o código que o capítulo ensina e os seguintes reutilizam.

ARQUIVO GERADO por `python ferramentas/exportar.py` a partir das células `# exportar` de
`07-instrucoes/notebook.ipynb`. Não edite à mão: mude o notebook e gere de novo.
"""
from functools import partial
import json
from pathlib import Path
import re
import string
import time
import unicodedata

import tiktoken
import torch
from torch.utils.data import DataLoader, Dataset

from llm_do_zero.oficina import artifacts_dir, get_device, get_mode, progress_bar, project_root, set_seed
from llm_do_zero.gpt import text_to_token_ids, token_ids_to_text
from llm_do_zero.pretreino import evaluate_model, generate, load_base_model, load_checkpoint, save_checkpoint


# %% 07-instrucoes/notebook.ipynb · célula 6
INSTRUCTION_SETTINGS = {
    "rapido": {"base_source": "auto", "preambulo": False, "train_open": False, "mask_prompt": True,
               "batch_size": 8, "lr": 3e-3, "weight_decay": 0.1, "num_epochs": 20, "max_seconds": 600,
               "eval_freq": 100, "eval_iter": 3, "allowed_max_length": 128, "max_new_tokens": 10},
    "completo": {"base_source": "gpt2", "preambulo": True, "train_open": True, "mask_prompt": True,
                 "batch_size": 8, "lr": 5e-5, "weight_decay": 0.1, "num_epochs": 3, "max_seconds": 1800,
                 "eval_freq": 50, "eval_iter": 5, "allowed_max_length": 1024, "max_new_tokens": 10},
}


# %% 07-instrucoes/notebook.ipynb · célula 12
OPEN_TASK = "aberta"   # tarefa das perguntas abertas: mostradas, mas sem nota automática


def instruction_data_path() -> Path:
    """Caminho do conjunto de instruções do curso (`07-instrucoes/dados/instrucoes.json`)."""
    return project_root() / "07-instrucoes" / "dados" / "instrucoes.json"


def load_instruction_data(path: str | Path | None = None) -> list[dict]:
    """Todos os exemplos do conjunto de instruções (dicionários com instrucao, entrada, saida, tarefa, particao)."""
    path = Path(path) if path is not None else instruction_data_path()
    if not path.is_file():
        raise FileNotFoundError(f"Não encontrei o conjunto de instruções em {path}. Ele vem com o repositório "
                                f"(07-instrucoes/dados/); para recriá-lo, rode `python gerar_instrucoes.py` "
                                f"nessa pasta.")
    return json.loads(path.read_text(encoding="utf-8"))


def load_instruction_splits(path: str | Path | None = None) -> tuple[list[dict], list[dict], list[dict]]:
    """As partições (treino, validação, teste) do conjunto de instruções, na ordem do arquivo."""
    dados = load_instruction_data(path)
    return tuple([e for e in dados if e["particao"] == p] for p in ("treino", "validacao", "teste"))


# %% 07-instrucoes/notebook.ipynb · célula 21
PREAMBULO = ("Abaixo está uma instrução que descreve uma tarefa. "
             "Escreva uma resposta que complete o pedido de forma adequada.")
RESPONSE_HEADER = "\n\n### Resposta:"


def format_input(entry: dict, preambulo: bool | None = None) -> str:
    """Prompt no formato Alpaca em português, SEM a resposta: (preâmbulo +) instrução (+ entrada, se houver).

    `preambulo=None` usa o padrão do modo (INSTRUCTION_SETTINGS); True/False força. O texto completo de um
    exemplo é `format_input(entry) + RESPONSE_HEADER + " " + entry["saida"]`.
    """
    if preambulo is None:
        preambulo = INSTRUCTION_SETTINGS[get_mode()]["preambulo"]
    texto = f"### Instrução: {entry['instrucao']}"
    if entry.get("entrada"):
        texto += f"\n\n### Entrada: {entry['entrada']}"
    return f"{PREAMBULO}\n\n{texto}" if preambulo else texto


# %% 07-instrucoes/notebook.ipynb · célula 27
def tokenize_example(entry: dict, tokenizer, preambulo: bool | None = None) -> tuple[list[int], int]:
    """Ids do exemplo completo (prompt + " " + resposta) e quantos deles são do prompt.

    Prompt e resposta são tokenizados separadamente e concatenados: é exatamente o que o modelo vê na
    geração, quando recebe o prompt e produz a resposta token a token.
    """
    prompt_ids = tokenizer.encode(format_input(entry, preambulo) + RESPONSE_HEADER)
    resposta_ids = tokenizer.encode(" " + entry["saida"])
    return prompt_ids + resposta_ids, len(prompt_ids)


class InstructionDataset(Dataset):
    """Exemplos de instrução tokenizados. Cada item é (ids do texto completo, nº de tokens do prompt)."""

    def __init__(self, data: list[dict], tokenizer, preambulo: bool | None = None):
        self.data = data
        self.encoded = [tokenize_example(e, tokenizer, preambulo) for e in data]

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.encoded[i]


def custom_collate_fn(batch, pad_token_id: int = 50256, ignore_index: int = -100,
                      allowed_max_length: int | None = None, mask_prompt: bool = False, device="cpu"):
    """Monta (entradas, alvos) de formato (lote, n) a partir de itens (ids, tamanho_do_prompt) ou só ids.

    Completa com `pad_token_id`, desloca os alvos de uma posição, troca o padding dos alvos por `ignore_index`
    (menos o primeiro, que marca o fim da resposta) e, com `mask_prompt=True`, ignora também os alvos do prompt.
    """
    itens = [item if isinstance(item, tuple) else (item, None) for item in batch]
    if mask_prompt and any(n is None for _, n in itens):
        raise ValueError("mask_prompt=True precisa saber o tamanho do prompt: passe itens (ids, tamanho_do_prompt), "
                         "como os do InstructionDataset.")
    maior = max(len(ids) for ids, _ in itens) + 1          # +1: o <|endoftext|> de cada sequência
    entradas, alvos = [], []
    for ids, n_prompt in itens:
        sequencia = list(ids) + [pad_token_id] * (maior - len(ids))
        entrada = torch.tensor(sequencia[:-1])
        alvo = torch.tensor(sequencia[1:])
        alvo[len(ids):] = ignore_index                     # alvo[len(ids) - 1] é o fim de texto: fica
        if mask_prompt:
            alvo[:n_prompt - 1] = ignore_index             # alvos que ainda são tokens do prompt
        if allowed_max_length is not None:
            entrada, alvo = entrada[:allowed_max_length], alvo[:allowed_max_length]
        entradas.append(entrada)
        alvos.append(alvo)
    return torch.stack(entradas).to(device), torch.stack(alvos).to(device)


def create_instruction_dataloader(data: list[dict], batch_size: int = 8, shuffle: bool = True,
                                  drop_last: bool = True, preambulo: bool | None = None, mask_prompt: bool = False,
                                  allowed_max_length: int | None = None, tokenizer=None) -> DataLoader:
    """DataLoader de lotes de instrução prontos para o `train_model_simple` do capítulo 05."""
    tokenizer = tokenizer or tiktoken.get_encoding("gpt2")
    collate = partial(custom_collate_fn, mask_prompt=mask_prompt, allowed_max_length=allowed_max_length)
    return DataLoader(InstructionDataset(data, tokenizer, preambulo), batch_size=batch_size, shuffle=shuffle,
                      drop_last=drop_last, collate_fn=collate)


# %% 07-instrucoes/notebook.ipynb · célula 35
def normalize_answer(texto: str, ignore_accents: bool = False) -> str:
    """Normaliza uma resposta para comparação: minúsculas, espaços colapsados, sem pontuação nas bordas
    e, com `ignore_accents=True`, sem acentos."""
    texto = unicodedata.normalize("NFC", texto).lower()
    texto = re.sub(r"\s+", " ", texto).strip(string.punctuation + " …«»“”‘’")
    if ignore_accents:
        texto = "".join(c for c in unicodedata.normalize("NFD", texto) if not unicodedata.combining(c))
    return texto


def exact_match(prediction: str, reference: str, ignore_accents: bool = False) -> bool:
    """True se as duas respostas ficam iguais depois de `normalize_answer`."""
    return normalize_answer(prediction, ignore_accents) == normalize_answer(reference, ignore_accents)


def extract_response(texto_gerado: str) -> str:
    """A resposta dentro de um texto gerado: o que vem depois de '### Resposta:', até o fim de texto
    ou a primeira quebra de linha."""
    resposta = texto_gerado.split(RESPONSE_HEADER.strip())[-1]
    resposta = resposta.split("<|endoftext|>")[0].strip()
    return resposta.split("\n")[0].strip()


def generate_response(model, entry: dict, tokenizer=None, preambulo: bool | None = None,
                      max_new_tokens: int = 40, device=None) -> str:
    """Gera (de forma gulosa) a resposta do modelo para um exemplo e a devolve já extraída."""
    tokenizer = tokenizer or tiktoken.get_encoding("gpt2")
    device = device or next(model.parameters()).device
    prompt = format_input(entry, preambulo) + RESPONSE_HEADER
    ids = text_to_token_ids(prompt, tokenizer).to(device)
    model.eval()
    saida = generate(model, ids, max_new_tokens, context_size=model.pos_emb.weight.shape[0], eos_id=50256)
    return extract_response(token_ids_to_text(saida, tokenizer))


def evaluate_instructions(model, entries: list[dict], tokenizer=None, preambulo: bool | None = None,
                          max_new_tokens: int = 10, device=None, desc: str = "avaliando") -> list[dict]:
    """Gera a resposta de cada exemplo. Devolve cópias dos exemplos com a chave 'resposta' acrescentada."""
    return [{**e, "resposta": generate_response(model, e, tokenizer, preambulo, max_new_tokens, device)}
            for e in progress_bar(entries, desc=desc)]


def score_by_task(results: list[dict], ignore_accents: bool = False) -> dict:
    """Acerto exato por tarefa e geral, só nos exemplos verificáveis (tarefa diferente de 'aberta')."""
    acertos: dict[str, list[bool]] = {}
    for r in results:
        if r["tarefa"] != OPEN_TASK:
            acertos.setdefault(r["tarefa"], []).append(exact_match(r["resposta"], r["saida"], ignore_accents))
    todos = [a for lista in acertos.values() for a in lista]
    return {"geral": sum(todos) / max(len(todos), 1),
            "por_tarefa": {t: sum(lista) / len(lista) for t, lista in acertos.items()}}


# %% 07-instrucoes/notebook.ipynb · célula 42
def calc_loss_batch_masked(input_batch: torch.Tensor, target_batch: torch.Tensor, model, device,
                           ignore_index: int = -100) -> torch.Tensor:
    """A mesma perda de `calc_loss_batch`, calculando a cabeça de saída só onde o alvo não é `ignore_index`.

    Percorre as camadas do GPTModel como o `forward` dele, mas entrega à cabeça (a parte mais cara) só as
    posições que entram na perda — com o prompt mascarado, poucas por exemplo.
    """
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    posicoes = torch.arange(input_batch.shape[1], device=device)
    x = model.drop_emb(model.tok_emb(input_batch) + model.pos_emb(posicoes))
    x = model.final_norm(model.trf_blocks(x))               # (lote, posições, emb_dim)
    contam = target_batch != ignore_index                     # (lote, posições)
    logits = model.out_head(x[contam])                        # (posições que contam, vocab_size)
    return torch.nn.functional.cross_entropy(logits, target_batch[contam])


# %% 07-instrucoes/notebook.ipynb · célula 46
def train_instruction_model(model, train_loader, val_loader, optimizer, device, num_epochs: int, eval_freq: int,
                            eval_iter: int, sample_entries: list[dict], tokenizer,
                            max_seconds: float | None = None, preambulo: bool | None = None):
    """Laço do ajuste fino por instruções: o `train_model_simple` do capítulo 05 com a perda mascarada.

    Avalia a cada `eval_freq` passos; ao fim de cada época, imprime as respostas do modelo a `sample_entries`.
    O treino acaba no fim das épocas; `max_seconds` é só uma rede de segurança para máquinas muito lentas.
    Devolve (train_losses, val_losses, track_tokens_seen).
    """
    train_losses, val_losses, track_tokens_seen = [], [], []
    tokens_seen, global_step = 0, -1
    inicio = time.perf_counter()
    acabou_tempo = False
    barra = progress_bar(total=num_epochs * len(train_loader), desc="ajuste fino", unit="passo")
    for epoch in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch_masked(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            tokens_seen += input_batch.numel()
            global_step += 1
            barra.update(1)
            acabou_tempo = max_seconds is not None and time.perf_counter() - inicio > max_seconds
            if global_step % eval_freq == 0 or acabou_tempo:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                barra.set_postfix(treino=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
            if acabou_tempo:
                break
        respostas = [generate_response(model, e, tokenizer, preambulo, max_new_tokens=10, device=device)
                     for e in sample_entries]
        barra.write(f"época {epoch + 1:2d}, passo {global_step:4d}: " + " | ".join(map(repr, respostas)))
        if acabou_tempo:
            barra.write(f"aviso: o limite de segurança de {max_seconds:.0f} s parou o treino na época {epoch + 1} "
                        f"de {num_epochs}; os números serão diferentes dos de referência.")
            break
    barra.close()
    return train_losses, val_losses, track_tokens_seen


def instruction_checkpoint_path(mode: str | None = None) -> Path:
    """Onde o capítulo 07 guarda o modelo ajustado para instruções de cada modo."""
    return artifacts_dir() / "checkpoints" / f"07-instrucoes-{mode or get_mode()}.pt"


def finetune_instructions(model, train_data: list[dict], val_data: list[dict], mode: str | None = None,
                          device=None, seed: int = 123) -> dict:
    """Ajuste fino por instruções com a configuração do modo (INSTRUCTION_SETTINGS).

    Treina `model` no lugar e devolve o histórico: perdas de treino/validação, tokens vistos e tempo.
    """
    mode = mode or get_mode()
    device = device or get_device()
    cfg = INSTRUCTION_SETTINGS[mode]
    if not cfg["train_open"]:
        train_data = [e for e in train_data if e["tarefa"] != OPEN_TASK]
        val_data = [e for e in val_data if e["tarefa"] != OPEN_TASK]
    set_seed(seed)
    tokenizer = tiktoken.get_encoding("gpt2")
    opcoes = {"preambulo": cfg["preambulo"], "mask_prompt": cfg["mask_prompt"],
              "allowed_max_length": cfg["allowed_max_length"], "tokenizer": tokenizer}
    train_loader = create_instruction_dataloader(train_data, cfg["batch_size"], shuffle=True, drop_last=True, **opcoes)
    val_loader = create_instruction_dataloader(val_data, cfg["batch_size"], shuffle=False, drop_last=False, **opcoes)
    model.to(device)
    # fused=True faz todas as contas do AdamW de uma vez (CPU e CUDA): no modo rápido, o passo cai quase à metade
    fundido = torch.device(device).type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"], fused=fundido)
    amostras = [next(e for e in val_data if e["tarefa"] == t) for t in ("capital", "sentimento", "maior_numero")]
    inicio = time.perf_counter()
    train_losses, val_losses, tokens_seen = train_instruction_model(
        model, train_loader, val_loader, optimizer, device, cfg["num_epochs"], cfg["eval_freq"], cfg["eval_iter"],
        amostras, tokenizer, max_seconds=cfg["max_seconds"], preambulo=cfg["preambulo"])
    model.eval()
    return {"train_losses": train_losses, "val_losses": val_losses, "tokens_seen": tokens_seen,
            "tempo_s": time.perf_counter() - inicio}


def load_instruction_model(mode: str | None = None, device=None):
    """Modelo ajustado para instruções. Devolve (model, config, fonte).

    Usa o checkpoint do capítulo 07 deste modo, se existir; senão, faz agora o ajuste fino do modelo de
    `load_base_model` com a configuração do modo (no modo rápido, cerca de dois minutos) e o salva.
    """
    mode = mode or get_mode()
    device = device or get_device()
    caminho = instruction_checkpoint_path(mode)
    if caminho.exists():
        try:
            model, pacote = load_checkpoint(caminho, device)
            print(f"Modelo de instruções: checkpoint do capítulo 07 ({caminho.name}).")
            return model.eval(), pacote["config"], "checkpoint"
        except ValueError as erro:
            print(f"O checkpoint {caminho.name} não serve ({erro}); vou ajustar um modelo agora.")
    model, config, fonte_base = load_base_model(mode, device, source=INSTRUCTION_SETTINGS[mode]["base_source"])
    print(f"Modelo de instruções: sem checkpoint do capítulo 07; ajustando o modelo base ({fonte_base}) agora "
          f"(até {INSTRUCTION_SETTINGS[mode]['max_seconds']} s)...")
    train_data, val_data, _ = load_instruction_splits()
    historico = finetune_instructions(model, train_data, val_data, mode, device)
    save_checkpoint(caminho, model, None, config, historico=historico, fonte_base=fonte_base)
    return model.eval(), config, "ajuste"
