"""Capítulo 06-finetuning: o código que o capítulo ensina e os seguintes reutilizam.

ARQUIVO GERADO por `python ferramentas/exportar.py` a partir das células `# exportar` de
`06-finetuning/notebook.ipynb`. Não edite à mão: mude o notebook e gere de novo.
"""
import math
from pathlib import Path
import random
import re
import zipfile

import torch
from torch import nn
from torch.utils.data import Dataset

from llm_do_zero.oficina import amp_settings, get_data_file
from llm_do_zero.gpt import GPTModel
from llm_do_zero.pretreino import autocast_context, train_loop


# %% 06-finetuning/notebook.ipynb · célula 7
# O que a execução deste capítulo tem de reproduzir (capítulo 00, seção 8): o que depende de treino tem folga de
# alguns pontos (a mesma receita, em outra máquina, move a acurácia em 1 a 3 pontos); contagens são exatas.
FINETUNE_CHECKS = {
    "capitulo": "06-finetuning",
    "tolerancias": {"test_accuracy_limpo": 0.03, "test_accuracy_limpo_sementes": 0.04,
                    "test_accuracy_limpo_desvio": 0.02, "baseline_test_accuracy_limpo": 0.02,
                    "baseline_val_accuracy_limpo": 0.02, "baseline_test_accuracy_original": 0.02,
                    "pistas_test_accuracy_limpo": 0.02, "pistas_val_accuracy_limpo": 0.02, "selecao_validacao": 0.05,
                    "epocas_sementes": 1, "receita": None, "segundos_selecao": None,
                    "diferenca_gpt_regua_pontos": 3.0, "diferenca_pareada_pontos_sementes": 4.0,
                    "mcnemar_p_sementes": None, "sementes_acima_da_regua_fora_do_ruido": None,
                    "val_epoca1_faixa": 0.05, "val_final_faixa": 0.05, "confusao": 60, "precisao": 0.05,
                    "revocacao": 0.05},
    "conclusoes": {
        "o GPT ajustado fica muito acima da classe majoritária": "test_accuracy_limpo > maioria_test_accuracy + 0.25",
        "no texto original, a regra do espaço duplo é um atalho quase perfeito": "regra_espaco_duplo_accuracy > 0.9",
        "as pistas de pontuação sozinhas não chegam ao GPT": "pistas_test_accuracy_limpo < test_accuracy_limpo",
        "o GPT fica perto do saco de tokens, sem se afastar dele":
            "abs(test_accuracy_limpo - baseline_test_accuracy_limpo) < 0.04",
    },
}


# %% 06-finetuning/notebook.ipynb · célula 9
FAKEBR_ZIP = "Fake.br-Corpus-master.zip"
FAKEBR_PAIRS = 3600                       # numerados de 1 a 3602 (faltam o 586 e o 1607)
FAKEBR_LABELS = ("verdadeira", "falsa")   # rótulo 0 e rótulo 1
_FAKEBR_MEMBER = re.compile(r"(?:^|/)size_normalized_texts/(fake|true)/(\d+)\.txt$")


def _fakebr_members(path: Path) -> dict[tuple[str, int], str]:
    """Confere o zip do Fake.br e devolve {(pasta, número do par): nome do arquivo dentro do zip}.

    Levanta ValueError (em português, dizendo o que falta) se o zip não abre, está corrompido ou incompleto.
    """
    try:
        with zipfile.ZipFile(path) as arquivo:
            nomes = arquivo.namelist()
            defeituoso = arquivo.testzip()
    except zipfile.BadZipFile as erro:
        raise ValueError("não é um arquivo zip válido (download interrompido ou arquivo corrompido)") from erro
    if defeituoso is not None:
        raise ValueError(f"o zip está corrompido: {defeituoso} não passa na verificação de integridade (CRC)")
    membros = {}
    for nome in nomes:
        achado = _FAKEBR_MEMBER.search(nome)
        if achado:
            membros[(achado.group(1), int(achado.group(2)))] = nome
    numeros = {pasta: {n for p, n in membros if p == pasta} for pasta in ("fake", "true")}
    if len(numeros["fake"]) != FAKEBR_PAIRS or len(numeros["true"]) != FAKEBR_PAIRS:
        raise ValueError(f"esperava {FAKEBR_PAIRS} textos falsos e {FAKEBR_PAIRS} verdadeiros em "
                         f"size_normalized_texts/fake/ e true/, e encontrei {len(numeros['fake'])} e "
                         f"{len(numeros['true'])}: o zip está incompleto ou não é o do corpus Fake.br")
    if numeros["fake"] != numeros["true"]:
        sobra = sorted(numeros["fake"] ^ numeros["true"])[:5]
        raise ValueError(f"os textos falsos e verdadeiros não formam pares (números sem par: {sobra}): "
                         f"o zip não é o do corpus Fake.br")
    return membros


def load_fakebr() -> list[dict]:
    """Corpus Fake.br (textos de tamanho normalizado) como lista de {"texto", "rotulo", "par"}.

    rotulo 1 = falsa, 0 = verdadeira; os dois textos de mesmo "par" tratam do mesmo assunto.
    O zip vem do cache, do espelho local (LLM_DADOS_ESPELHO) ou do GitHub, e é conferido pelo conteúdo;
    se não servir, levanta DownloadError explicando o motivo.
    """
    caminho = get_data_file(FAKEBR_ZIP, validate=_fakebr_members, quiet=True)
    membros = _fakebr_members(caminho)
    exemplos = []
    with zipfile.ZipFile(caminho) as arquivo:
        for par in sorted({numero for _, numero in membros}):
            for rotulo, pasta in ((1, "fake"), (0, "true")):
                bruto = arquivo.read(membros[(pasta, par)]).decode("utf-8", errors="replace")
                exemplos.append({"texto": bruto.replace("\r\n", "\n").strip(), "rotulo": rotulo, "par": par})
    return exemplos


# %% 06-finetuning/notebook.ipynb · célula 17
def split_by_pair(examples: list[dict], train_frac: float = 0.7, val_frac: float = 0.1,
                  seed: int = 123) -> tuple[list[dict], list[dict], list[dict]]:
    """Divide em (treino, validação, teste) sorteando números de par: os dois textos de um par ficam juntos.

    Cada parte vem na ordem do sorteio (os dois textos de cada par lado a lado), então qualquer trecho inicial dela
    já é uma amostra ao acaso. Usa random.Random(seed), sem mexer no gerador global: mesma semente, mesma divisão.
    """
    if not (0 < train_frac < 1 and 0 <= val_frac < 1 and train_frac + val_frac < 1):
        raise ValueError(f"Frações inválidas: treino={train_frac}, validação={val_frac}. Use valores entre 0 e 1 "
                         f"com soma menor que 1 (o resto vai para o teste).")
    por_par: dict[int, list[dict]] = {}
    for exemplo in examples:
        por_par.setdefault(exemplo["par"], []).append(exemplo)
    pares = sorted(por_par)
    random.Random(seed).shuffle(pares)
    n_train = round(len(pares) * train_frac)
    n_val = round(len(pares) * val_frac)
    fatias = (pares[:n_train], pares[n_train:n_train + n_val], pares[n_train + n_val:])
    return tuple([e for par in fatia for e in por_par[par]] for fatia in fatias)


def sample_pairs(examples: list[dict], num_pairs: int | None, seed: int = 123) -> list[dict]:
    """Amostra sorteada de `num_pairs` pares inteiros (os dois textos de cada um); None = todos."""
    pares = sorted({e["par"] for e in examples})
    if num_pairs is None or num_pairs >= len(pares):
        return list(examples)
    escolhidos = set(random.Random(seed).sample(pares, num_pairs))
    return [e for e in examples if e["par"] in escolhidos]


# %% 06-finetuning/notebook.ipynb · célula 20
class FakeNewsDataset(Dataset):
    """Notícias tokenizadas, truncadas em `max_length` tokens e preenchidas até esse tamanho.

    O preenchimento é o <|endoftext|> do próprio tokenizador (`tokenizer.eot_token`, guardado em `pad_token_id`).
    Cada item é (ids de formato (max_length,), rótulo). `lengths` guarda quantos tokens cada texto tinha antes do
    corte. O texto é codificado com disallowed_special=(), então o id de preenchimento nunca aparece no meio dele.
    """

    def __init__(self, examples: list[dict], tokenizer, max_length: int):
        if max_length < 1:
            raise ValueError(f"max_length precisa ser pelo menos 1 (recebi {max_length}).")
        self.max_length = max_length
        self.pad_token_id = tokenizer.eot_token
        self.input_ids, self.labels, self.lengths = [], [], []
        for i, exemplo in enumerate(examples):
            ids = tokenizer.encode(exemplo["texto"], disallowed_special=())
            if not ids:
                raise ValueError(f"O exemplo {i} (par {exemplo.get('par')}) tem texto vazio.")
            self.lengths.append(len(ids))
            ids = ids[:max_length]
            self.input_ids.append(ids + [self.pad_token_id] * (max_length - len(ids)))
            self.labels.append(int(exemplo["rotulo"]))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return torch.tensor(self.input_ids[i]), torch.tensor(self.labels[i])


# %% 06-finetuning/notebook.ipynb · célula 23
def embedding_bag_device(device, torch_version: str = torch.__version__) -> torch.device:
    """Onde treinar o saco de tokens: em `device`, menos na GPU da Apple (MPS) com torch anterior ao 2.10, que não
    tem o `nn.EmbeddingBag`; lá, na CPU (a régua é pequena e treina em segundos)."""
    device = torch.device(device)
    versao = tuple(int(parte) for parte in re.findall(r"\d+", torch_version)[:2])
    return torch.device("cpu") if device.type == "mps" and versao < (2, 10) else device


# %% 06-finetuning/notebook.ipynb · célula 33
def normalize_spaces(text: str) -> str:
    """Troca cada sequência de espaços em branco (espaços, quebras de linha, tabulações) por um espaço só.

    Também apara as pontas. É a limpeza que tira do Fake.br o atalho do espaço duplo.
    """
    return re.sub(r"\s+", " ", text).strip()


def normalize_examples(examples: list[dict]) -> list[dict]:
    """Cópias dos exemplos com o texto passado por normalize_spaces (os originais ficam intactos)."""
    return [{**e, "texto": normalize_spaces(e["texto"])} for e in examples]


# %% 06-finetuning/notebook.ipynb · célula 43
POOLINGS = ("last", "first", "mean")


def add_classification_head(model: GPTModel, num_classes: int = 2, trainable: str = "all") -> GPTModel:
    """Troca a cabeça de vocabulário por Linear(emb_dim, num_classes) e escolhe o que vai aprender.

    trainable: "head" (só a cabeça nova), "last_block" (último bloco transformer + norma final + cabeça, como no
    livro) ou "all" (o modelo inteiro). Os parâmetros restantes ficam congelados (requires_grad=False).
    """
    opcoes = ("head", "last_block", "all")
    if trainable not in opcoes:
        raise ValueError(f"trainable={trainable!r} não existe. Opções: {', '.join(opcoes)}.")
    for parametro in model.parameters():
        parametro.requires_grad = trainable == "all"
    if trainable == "last_block":
        for parametro in [*model.trf_blocks[-1].parameters(), *model.final_norm.parameters()]:
            parametro.requires_grad = True
    model.out_head = nn.Linear(model.out_head.in_features, num_classes).to(model.tok_emb.weight.device)
    return model


def classifier_logits(model, input_batch: torch.Tensor, pad_token_id: int, pooling: str = "last") -> torch.Tensor:
    """Logits (lote, classes) de cada texto, resumidos das posições reais (as que não são `pad_token_id`).

    pooling: "last" (posição do último token real, como no livro), "first" (primeira posição) ou "mean" (média
    dos logits das posições reais). O preenchimento precisa vir depois dos tokens reais, como no FakeNewsDataset.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r} não existe. Opções: {', '.join(POOLINGS)}.")
    logits = model(input_batch)                                  # (lote, posições, classes)
    if pooling == "first":
        return logits[:, 0]
    reais = input_batch != pad_token_id                          # (lote, posições)
    if pooling == "mean":
        pesos = reais.unsqueeze(-1).to(logits.dtype)
        return (logits * pesos).sum(dim=1) / pesos.sum(dim=1).clamp(min=1)
    ultima = (reais.sum(dim=1) - 1).clamp(min=0)
    linhas = torch.arange(input_batch.shape[0], device=input_batch.device)
    return logits[linhas, ultima]                                # (lote, classes)


# %% 06-finetuning/notebook.ipynb · célula 48
def calc_loss_batch_classifier(input_batch: torch.Tensor, target_batch: torch.Tensor, model, device, *,
                               pad_token_id: int, pooling: str = "last") -> torch.Tensor:
    """Entropia cruzada da classificação em um lote, com os logits resumidos por `pooling`."""
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    logits = classifier_logits(model, input_batch, pad_token_id, pooling)
    return torch.nn.functional.cross_entropy(logits, target_batch)


def calc_loss_loader_classifier(data_loader, model, device, num_batches: int | None = None, *,
                                pad_token_id: int, pooling: str = "last") -> float:
    """Perda média de classificação em até `num_batches` lotes (todos, se None), sem gradiente."""
    if len(data_loader) == 0:
        return float("nan")
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    total = 0.0
    with torch.no_grad(), autocast_context(device, amp_settings(device)[0]):   # na GPU, como no treino
        for i, (input_batch, target_batch) in enumerate(data_loader):
            if i >= num_batches:
                break
            total += calc_loss_batch_classifier(input_batch, target_batch, model, device,
                                                pad_token_id=pad_token_id, pooling=pooling).item()
    return total / num_batches


def calc_accuracy_loader(data_loader, model, device, num_batches: int | None = None, *,
                         pad_token_id: int, pooling: str = "last") -> float:
    """Fração de acertos em até `num_batches` lotes (todos, se None), com o modelo em modo de avaliação."""
    if len(data_loader) == 0:
        return float("nan")
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    estava_treinando = model.training
    model.eval()
    acertos, vistos = 0, 0
    with torch.no_grad(), autocast_context(device, amp_settings(device)[0]):   # na GPU, como no treino
        for i, (input_batch, target_batch) in enumerate(data_loader):
            if i >= num_batches:
                break
            logits = classifier_logits(model, input_batch.to(device), pad_token_id, pooling)
            acertos += (logits.argmax(dim=-1) == target_batch.to(device)).sum().item()
            vistos += target_batch.shape[0]
    model.train(estava_treinando)
    return acertos / vistos


# %% 06-finetuning/notebook.ipynb · célula 53
def classifier_param_groups(model, lr: float, fast_lr: float | None = None) -> list[dict]:
    """Grupos do otimizador com os parâmetros treináveis: embeddings de token e cabeça com `fast_lr`, o resto com `lr`.

    fast_lr=None usa `lr` para todos. Parâmetros congelados ficam de fora; grupos vazios também.
    """
    fast_lr = lr if fast_lr is None else fast_lr
    rapidos = {id(p) for p in (model.tok_emb.weight, *model.out_head.parameters())}
    treinaveis = [p for p in model.parameters() if p.requires_grad]
    grupos = ({"params": [p for p in treinaveis if id(p) not in rapidos], "lr": lr},
              {"params": [p for p in treinaveis if id(p) in rapidos], "lr": fast_lr})
    return [grupo for grupo in grupos if grupo["params"]]


def evaluate_classifier(model, train_loader, val_loader, device, eval_iter: int, *,
                        pad_token_id: int, pooling: str = "last") -> tuple[float, float, float, float]:
    """(perda de treino, perda de validação, acurácia de treino, acurácia de validação) em `eval_iter` lotes."""
    opcoes = {"pad_token_id": pad_token_id, "pooling": pooling}
    model.eval()
    train_loss = calc_loss_loader_classifier(train_loader, model, device, eval_iter, **opcoes)
    val_loss = calc_loss_loader_classifier(val_loader, model, device, eval_iter, **opcoes)
    train_acc = calc_accuracy_loader(train_loader, model, device, eval_iter, **opcoes)
    val_acc = calc_accuracy_loader(val_loader, model, device, eval_iter, **opcoes)
    model.train()
    return train_loss, val_loss, train_acc, val_acc


def train_classifier_simple(model, train_loader, val_loader, optimizer, device, num_epochs: int, eval_freq: int,
                            eval_iter: int, *, pad_token_id: int, pooling: str = "last", keep_best: bool = False,
                            max_steps: int | None = None):
    """Fine-tuning de classificação com o `train_loop` do capítulo 05: muda a perda e o que se mede.

    A cada avaliação (depois do passo 1, a cada `eval_freq` passos e no último), perda e acurácia em `eval_iter`
    lotes de treino e de validação; no fim de cada época, a acurácia na validação inteira. Com keep_best=True, o
    modelo termina com os pesos da época de maior acurácia de validação (parada antecipada). `max_steps` encerra o
    treino antes do fim das épocas (None: sem teto), e a época interrompida também é medida. Devolve
    (train_losses, val_losses, train_accs, val_accs, examples_seen, epoch_val_accs): as métricas de cada avaliação,
    quantos exemplos de treino o modelo tinha visto em cada uma, e a acurácia na validação inteira ao fim de cada
    época.
    """
    opcoes = {"pad_token_id": pad_token_id, "pooling": pooling}
    epoch_val_accs, melhor = [], {}

    def perda(lote):
        return calc_loss_batch_classifier(*lote, model, device, **opcoes)

    def avaliar(passo):
        metricas = evaluate_classifier(model, train_loader, val_loader, device, eval_iter, **opcoes)
        return dict(zip(("perda_treino", "perda_val", "acc_treino", "acc_val"), metricas))

    def fim_da_epoca(epoca, barra, historico):
        acc_val = calc_accuracy_loader(val_loader, model, device, **opcoes)
        barra.write(f"época {epoca}: acurácia na validação inteira {acc_val:.1%}")
        if keep_best and (not epoch_val_accs or acc_val > max(epoch_val_accs)):
            melhor["estado"] = {nome: valor.detach().clone() for nome, valor in model.state_dict().items()}
        epoch_val_accs.append(acc_val)

    historico = train_loop(model, optimizer, train_loader, device, perda, num_epochs=num_epochs,
                           max_steps=max_steps, eval_freq=eval_freq, evaluate=avaliar, on_epoch_end=fim_da_epoca,
                           desc="fine-tuning")
    if "estado" in melhor:
        model.load_state_dict(melhor["estado"])
    colunas = [[a[chave] for a in historico["avaliacoes"]]
               for chave in ("perda_treino", "perda_val", "acc_treino", "acc_val", "exemplos")]
    return (*colunas, epoch_val_accs)


# %% 06-finetuning/notebook.ipynb · célula 57
class LoRALayer(nn.Module):
    """O desvio de posto baixo da LoRA: x -> (alpha / rank) · (x A) B.

    A tem formato (in_dim, rank) e começa pequena e aleatória; B tem formato (rank, out_dim) e começa em zero,
    então, antes do treino, o desvio é exatamente nulo.
    """

    def __init__(self, in_dim: int, out_dim: int, rank: int, alpha: float):
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank precisa ser pelo menos 1 (recebi {rank}).")
        self.A = nn.Parameter(torch.randn(in_dim, rank) / math.sqrt(in_dim))
        self.B = nn.Parameter(torch.zeros(rank, out_dim))
        self.rank = rank
        self.alpha = alpha
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * ((x @ self.A) @ self.B)


class LinearWithLoRA(nn.Module):
    """Uma nn.Linear congelada mais o seu desvio LoRA: saída = linear(x) + (alpha / rank) · (x A) B."""

    def __init__(self, linear: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.linear = linear
        for parametro in self.linear.parameters():
            parametro.requires_grad = False
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha).to(linear.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.lora(x)


def replace_linear_with_lora(model: nn.Module, rank: int, alpha: float) -> nn.Module:
    """Congela o GPT e troca cada nn.Linear dos seus blocos transformer por uma LinearWithLoRA.

    A cabeça (`out_head`, por exemplo a de classificação de add_classification_head) continua uma nn.Linear comum
    e treinável: depois da troca, aprendem só as matrizes A e B e a cabeça. Modifica o modelo e o devolve.
    """
    if any(isinstance(modulo, LinearWithLoRA) for modulo in model.modules()):
        raise ValueError("Este modelo já tem camadas LoRA: aplique replace_linear_with_lora uma vez só.")
    for parametro in model.parameters():
        parametro.requires_grad = False
    for bloco in model.trf_blocks:
        lineares = [(nome, modulo) for nome, modulo in bloco.named_modules() if isinstance(modulo, nn.Linear)]
        for nome, linear in lineares:
            caminho_pai, _, filho = nome.rpartition(".")
            pai = bloco.get_submodule(caminho_pai) if caminho_pai else bloco
            setattr(pai, filho, LinearWithLoRA(linear, rank, alpha))
    for parametro in model.out_head.parameters():
        parametro.requires_grad = True
    return model


# %% 06-finetuning/notebook.ipynb · célula 80
def classify_text(text: str, model, tokenizer, device, max_length: int, pooling: str = "last") -> tuple[str, float]:
    """Classifica uma notícia: devolve ("falsa" ou "verdadeira", probabilidade dessa classe).

    Normaliza os espaços (normalize_spaces), codifica com o tokenizador do modelo e preenche com o
    <|endoftext|> dele. Lê só os primeiros `max_length` tokens (limitados ao contexto do modelo) e avisa quando
    corta o texto. `pooling` tem de ser o mesmo do treino.
    """
    if not isinstance(text, str):
        raise TypeError(f"classify_text espera um texto (str), mas recebeu {type(text).__name__}.")
    if not text.strip():
        raise ValueError("O texto está vazio: escreva a notícia que você quer classificar.")
    limite = min(max_length, model.pos_emb.weight.shape[0])
    ids = tokenizer.encode(normalize_spaces(text), disallowed_special=())
    if len(ids) > limite:
        print(f"Aviso: o texto tem {len(ids)} tokens; o classificador lê só os primeiros {limite}.")
        ids = ids[:limite]
    pad_token_id = tokenizer.eot_token
    entrada = torch.tensor([ids + [pad_token_id] * (limite - len(ids))], device=device)
    estava_treinando = model.training
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(classifier_logits(model, entrada, pad_token_id, pooling), dim=-1)[0]
    model.train(estava_treinando)
    classe = int(probs.argmax())
    return FAKEBR_LABELS[classe], probs[classe].item()
