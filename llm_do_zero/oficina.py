"""Capítulo 00-oficina: o código que o capítulo ensina e os seguintes reutilizam.

ARQUIVO GERADO por `python ferramentas/exportar.py` a partir das células `# exportar` de
`00-oficina/notebook.ipynb`. Não edite à mão: mude o notebook e gere de novo.
"""
import gc
import hashlib
import json
import os
from pathlib import Path
import random
import shutil
import sys
import time
from typing import Callable
import unicodedata
import urllib.error
import urllib.request

import numpy as np
import torch
from tqdm.std import tqdm as _tqdm_texto


# %% 00-oficina/notebook.ipynb · célula 5
MODOS = ("rapido", "completo")
# O modo completo foi medido para a GPU T4 do Colab (~15 GB); abaixo disto, ele não cabe.
COMPLETO_MIN_GPU_GB = 12
_avisos_dados: set[str] = set()


def get_mode() -> str:
    """Devolve o modo do curso: 'rapido' (CPU, minutos) ou 'completo' (GPU, tamanho real).

    Lê a variável de ambiente LLM_MODO; sem ela, escolhe 'completo' se houver GPU CUDA e 'rapido' caso contrário.
    Numa GPU com menos de COMPLETO_MIN_GPU_GB de memória, o completo não cabe: o curso avisa (uma vez) e usa o
    rápido.
    """
    bruto = os.environ.get("LLM_MODO", "").strip().lower()
    modo = unicodedata.normalize("NFKD", bruto).encode("ascii", "ignore").decode()
    if not modo:
        modo = "completo" if torch.cuda.is_available() else "rapido"
    elif modo not in MODOS:
        raise ValueError(f"LLM_MODO={bruto!r} não é um modo válido. Use um destes: {', '.join(MODOS)}.")
    if modo == "completo" and torch.cuda.is_available():
        memoria_gb = torch.cuda.get_device_properties(0).total_memory / 2**30
        if memoria_gb < COMPLETO_MIN_GPU_GB:
            aviso = (f"Esta GPU tem {memoria_gb:.1f} GB de memória e o modo completo precisa de pelo menos "
                     f"{COMPLETO_MIN_GPU_GB} GB: usando o modo rápido.")
            if aviso not in _avisos_dados:
                _avisos_dados.add(aviso)
                print(aviso)
            return "rapido"
    return modo


# %% 00-oficina/notebook.ipynb · célula 25
def get_device() -> torch.device:
    """Melhor dispositivo disponível: GPU CUDA, depois GPU Apple (MPS), senão CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device | None = None) -> str:
    """Descrição curta do dispositivo para relatórios (nome da GPU ou núcleos da CPU)."""
    device = device or get_device()
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "GPU Apple (MPS)"
    return f"CPU ({os.cpu_count()} núcleos)"


def set_seed(seed: int = 123) -> None:
    """Fixa as sementes de Python, NumPy e PyTorch (CPU e GPU) para resultados reprodutíveis."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


# %% 00-oficina/notebook.ipynb · célula 30
def amp_settings(device) -> tuple[torch.dtype | None, bool]:
    """(tipo do autocast, usar GradScaler?) para treinar em `device`.

    GPU CUDA com capacidade >= 8 (Ampere ou mais nova): bfloat16, sem scaler; CUDA mais antiga (T4, V100): float16
    com GradScaler; CPU e MPS: (None, False), precisão cheia.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None, False
    if torch.cuda.get_device_capability(device)[0] >= 8:
        return torch.bfloat16, False
    return torch.float16, True


def gpu_peak_memory(device) -> str:
    """'pico de memória da GPU: X GB' desde o último reset (vazio fora da CUDA)."""
    device = torch.device(device)
    if device.type != "cuda":
        return ""
    return f"pico de memória da GPU: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GB"


def synchronize(device) -> None:
    """Espera a GPU terminar o que já foi pedido (CUDA ou Apple), para um cronômetro medir a conta e não o pedido."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def free_gpu_memory(device) -> None:
    """Devolve à GPU a memória de tensores que já não têm nome (chame depois de `del modelo, otimizador`)."""
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


# %% 00-oficina/notebook.ipynb · célula 46
class _BarraDeTexto(_tqdm_texto):
    """A `tqdm` de texto, com `set_postfix` que espera o próximo redesenho em vez de forçar um."""

    def set_postfix(self, ordered_dict=None, refresh=False, **kwargs):
        super().set_postfix(ordered_dict, refresh=refresh, **kwargs)


def progress_bar(iterable=None, total: int | None = None, desc: str | None = None, **kwargs):
    """Barra de progresso do curso: texto simples, redesenhada no máximo a cada 2 s (`mininterval`).

    Aceita os argumentos da `tqdm`. Manda poucas mensagens ao Jupyter, ao contrário da barra de widget.
    """
    opcoes = {"mininterval": 2.0, "ncols": 100, "file": sys.stdout}
    opcoes.update(kwargs)
    return _BarraDeTexto(iterable, total=total, desc=desc, **opcoes)


# %% 00-oficina/notebook.ipynb · célula 56
def project_root() -> Path:
    """Raiz do repositório do curso (a pasta com `ferramentas/exportar.py`), procurando a partir da pasta atual."""
    atual = Path.cwd().resolve()
    for pasta in (atual, *atual.parents):
        if (pasta / "ferramentas" / "exportar.py").exists():
            return pasta
    return Path.home() / ".cache" / "fazendo-um-llm-do-zero"


def cache_dir() -> Path:
    """Pasta dos downloads: LLM_CACHE_DIR, ou `dados-cache/` na raiz do repositório."""
    return Path(os.environ.get("LLM_CACHE_DIR") or project_root() / "dados-cache")


def artifacts_dir() -> Path:
    """Pasta de modelos treinados e resultados: LLM_ARTEFATOS, ou `artefatos/` na raiz do repositório."""
    return Path(os.environ.get("LLM_ARTEFATOS") or project_root() / "artefatos")


class DownloadError(RuntimeError):
    """Falha ao obter um arquivo: rede, espelho ou verificação. A mensagem diz o que fazer."""


def sha256_of(path: Path) -> str:
    """SHA-256 de um arquivo, lido em pedaços (serve para arquivos grandes)."""
    soma = hashlib.sha256()
    with open(path, "rb") as f:
        for pedaco in iter(lambda: f.read(1 << 20), b""):
            soma.update(pedaco)
    return soma.hexdigest()


def _show_path(path: Path) -> str:
    """Caminho para mensagens: relativo à raiz do repositório quando estiver dentro dela."""
    try:
        return Path(path).resolve().relative_to(project_root()).as_posix()
    except ValueError:
        return str(path)


def _mirror_folder() -> Path | None:
    """Pasta do espelho local (LLM_DADOS_ESPELHO), relativa à pasta atual ou à raiz do repositório."""
    bruto = os.environ.get("LLM_DADOS_ESPELHO")
    if not bruto:
        return None
    for candidato in (Path(bruto), project_root() / bruto):
        if candidato.is_dir():
            return candidato
    return None


def _check_file(part: Path, url: str, fonte: str, sha256: str | None,
                validate: Callable[[Path], None] | None) -> None:
    """Confere SHA-256 e conteúdo de um arquivo recém-obtido; em caso de problema, apaga-o e explica."""
    if sha256 is not None:
        obtido = sha256_of(part)
        if obtido != sha256:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"O arquivo obtido de {fonte} está corrompido ou não é o esperado: SHA-256 {obtido[:16]}…, "
                f"esperado {sha256[:16]}…. Nada foi guardado no cache. Tente de novo; se persistir, baixe-o "
                f"à mão de {url}.")
    if validate is not None:
        try:
            validate(part)
        except Exception as erro:
            part.unlink(missing_ok=True)
            raise DownloadError(f"O arquivo obtido de {fonte} não tem o conteúdo esperado: {erro}. "
                                f"Nada foi guardado no cache.") from erro


def _is_valid(path: Path, sha256: str | None, validate: Callable[[Path], None] | None) -> bool:
    if sha256 is not None and sha256_of(path) != sha256:
        return False
    if validate is not None:
        try:
            validate(path)
        except Exception:
            return False
    return True


def download_file(url: str, path: str | Path, sha256: str | None = None, mirror_name: str | None = None,
                  validate: Callable[[Path], None] | None = None, timeout: float = 30.0,
                  quiet: bool = False) -> Path:
    """Baixa `url` para `path` com cache, espelho local, escrita atômica e verificação.

    - Se `path` já existe e confere (SHA-256 e/ou `validate`), nada é baixado.
    - Se LLM_DADOS_ESPELHO aponta para uma pasta com `mirror_name`, o arquivo é copiado de lá.
    - Senão, é baixado da internet para `path.part` e só renomeado para `path` depois de verificado.
    - `validate(caminho)` pode conferir o conteúdo quando não há SHA-256 fixo (e deve levantar erro se não servir).
    Qualquer falha levanta DownloadError com a URL e o jeito de colocar o arquivo à mão; nada incompleto fica.
    """
    path = Path(path)
    if path.exists():
        if _is_valid(path, sha256, validate):
            return path
        if not quiet:
            print(f"{path.name} está no cache mas não confere; obtendo de novo.")
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    espelho = _mirror_folder()
    origem = espelho / mirror_name if espelho is not None and mirror_name else None
    try:
        if origem is not None and origem.is_file():
            shutil.copyfile(origem, part)
            fonte = f"espelho local (LLM_DADOS_ESPELHO: {mirror_name})"
        else:
            _fetch_url(url, part, timeout, quiet)
            fonte = url
        _check_file(part, url, fonte, sha256, validate)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    if not quiet:
        print(f"{path.name}: {path.stat().st_size:,} bytes obtidos de {fonte}".replace(",", "."))
    return path


def _fetch_url(url: str, part: Path, timeout: float, quiet: bool) -> None:
    """Baixa `url` para o arquivo `part`, com barra de progresso; erros viram DownloadError em português."""
    destino_final = part.with_name(part.name.removesuffix(".part"))
    ajuda = (f"Sem internet? Baixe o arquivo em outro computador e coloque-o em {_show_path(destino_final)}, "
             f"ou aponte LLM_DADOS_ESPELHO para uma pasta com uma cópia.")
    try:
        pedido = urllib.request.Request(url, headers={"User-Agent": "fazendo-um-llm-do-zero"})
        with urllib.request.urlopen(pedido, timeout=timeout) as resposta, open(part, "wb") as saida:
            total = int(resposta.headers.get("Content-Length") or 0) or None
            with progress_bar(total=total, unit="B", unit_scale=True, desc=destino_final.name,
                      disable=quiet or total is None) as barra:
                for pedaco in iter(lambda: resposta.read(1 << 16), b""):
                    saida.write(pedaco)
                    barra.update(len(pedaco))
    except (urllib.error.URLError, OSError, ValueError) as erro:
        part.unlink(missing_ok=True)
        motivo = getattr(erro, "reason", erro)
        raise DownloadError(f"Não consegui baixar {url} ({motivo}). {ajuda}") from erro


# %% 00-oficina/notebook.ipynb · célula 58
_MACHADO = "https://raw.githubusercontent.com/luxedo/dataset-machado-de-assis/master/txt"
_GPT2_BPE = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main"

DATA_FILES: dict[str, dict] = {
    "machado/casaVelha.txt": {"url": f"{_MACHADO}/romance/casaVelha.txt",
                              "sha256": "5defe6c618f2d0538523e3f6fec112d46b1656b1c7a896ec18c57d1eeb99bd64"},
    "machado/contosFluminenses.txt": {"url": f"{_MACHADO}/conto/contosFluminenses.txt",
                                      "sha256": "eb84024c30a15ca99efdce4e24812128a5c4d83fda0e1bc2d4500dd5760e76de"},
    "machado/domCasmurro.txt": {"url": f"{_MACHADO}/romance/domCasmurro.txt",
                                "sha256": "d2d0da51e599361f12347905e9aedd32527912e0676111131bd919f792ef9360"},
    "machado/esau.txt": {"url": f"{_MACHADO}/romance/esau.txt",
                         "sha256": "2c6c40a46e0b37157438a0652a859b265c90fcb3f8992dc68035c427dc365ea2"},
    "machado/helena.txt": {"url": f"{_MACHADO}/romance/helena.txt",
                           "sha256": "13cb0ae9ac7915a745d3d8a5aa7caa6f73eaadaa3ac1640aa3d988434a1e121b"},
    "machado/historiasMeiaNoite.txt": {"url": f"{_MACHADO}/conto/historiasMeiaNoite.txt",
                                       "sha256": "ff8740d7592a6c0a6c89d6d64532ba59783bc3b08b030b19cd99682972c55241"},
    "machado/historiasSemData.txt": {"url": f"{_MACHADO}/conto/historiasSemData.txt",
                                     "sha256": "7b06454bdb9ac08f8c11d6c3188b921458be3f0576f2121b1b58f828258682db"},
    "machado/iaia.txt": {"url": f"{_MACHADO}/romance/iaia.txt",
                         "sha256": "e7089fa955d334b5cc26ceb3e0e681695ffd18c74d86b3bf64965314f20cda9c"},
    "machado/maoLuva.txt": {"url": f"{_MACHADO}/romance/maoLuva.txt",
                            "sha256": "b15a6fb8db0291c4e3228a24534907d5b38344b4ecfae4301b3d8041de16e3b7"},
    "machado/memorial-de-aires.txt": {"url": f"{_MACHADO}/romance/memorial-de-aires.txt",
                                      "sha256": "76343d1bb6ab6dd58cc9623d3862f852ebb706b1b6dc827066d83bffa3e78289"},
    "machado/memoriasBras.txt": {"url": f"{_MACHADO}/romance/memoriasBras.txt",
                                 "sha256": "3cb24e357d9c5ae7c95b4efb4949e7b8838a528577281bc875f6e8e9a9780bba"},
    "machado/paginasRecolhidas.txt": {"url": f"{_MACHADO}/conto/paginasRecolhidas.txt",
                                      "sha256": "2df54b36a5d15bf22f067b99c8d1ec911b40a904f7bf38b93729d001fd640c0f"},
    "machado/papeisAvulsos.txt": {"url": f"{_MACHADO}/conto/papeisAvulsos.txt",
                                  "sha256": "cfb8934bb81b1b731455565fc4aeacffa0443acbcacf7cd9b86d4bce26429392"},
    "machado/quincas.txt": {"url": f"{_MACHADO}/romance/quincas.txt",
                            "sha256": "dc7b6452a1aa0f9bfe170035b25bcdef8d2b528fe081fe2aa2d5a6d76a2b5be1"},
    "machado/reliquias.txt": {"url": f"{_MACHADO}/conto/reliquias.txt",
                              "sha256": "22670d377a0fdd79ee8b69689a26b3df0e12e1ed4b45d0605ba651927d2de37f"},
    "machado/ressurreicao.txt": {"url": f"{_MACHADO}/romance/ressurreicao.txt",
                                 "sha256": "ffc33c6f6adf780b16e7a81b8a128b9a1bab86523cca9d111bb9214fc95a6f60"},
    "machado/variasHistorias.txt": {"url": f"{_MACHADO}/conto/variasHistorias.txt",
                                    "sha256": "da1b48ccbd6e0f6a295ac4b6fbb509e2cc36af75f420e4cf3a4794fa44089dce"},
    "gpt2/vocab.bpe": {"url": f"{_GPT2_BPE}/vocab.bpe",
                       "sha256": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"},
    "gpt2/encoder.json": {"url": f"{_GPT2_BPE}/encoder.json",
                          "sha256": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"},
    "Fake.br-Corpus-master.zip": {"url": "https://github.com/roneysco/Fake.br-Corpus/archive/refs/heads/master.zip",
                                  "sha256": None},
}


def get_data_file(name: str, validate: Callable[[Path], None] | None = None, quiet: bool = False) -> Path:
    """Caminho no cache de um arquivo do registro DATA_FILES, obtido (e verificado) se ainda não estiver lá."""
    if name not in DATA_FILES:
        raise KeyError(f"{name!r} não está no registro de dados do curso. Opções: {', '.join(sorted(DATA_FILES))}")
    info = DATA_FILES[name]
    return download_file(info["url"], cache_dir() / name, sha256=info["sha256"], mirror_name=name,
                         validate=validate, quiet=quiet)


# %% 00-oficina/notebook.ipynb · célula 76
# Só para os mantenedores: LLM_FUMACA=1 é o teste de fumaça (smoke test) de um modo. Todas as configurações e todos
# os caminhos do código do modo continuam valendo, mas os passos, os dados e as avaliações encolhem para poucos,
# e o modo completo inteiro roda em minutos numa CPU (.ci/run faz isso). Cada chave abaixo, onde aparecer nas
# configurações de um capítulo, fica com no máximo este valor; None ("tudo") também vira este valor.
SMOKE_LIMITS = {
    "max_steps": 2, "steps": 2, "num_epochs": 1, "max_epochs": 1, "warmup_steps": 1, "batch_size": 2,  # treino
    "eval_freq": 2, "eval_every": 2, "eval_iter": 1, "eval_batches": 1, "eval_texts": 4,             # avaliação
    "max_new_tokens": 4, "samples": 1, "repeats": 1,
    "train_pairs": 16, "train_examples": 8, "train_chars": 60_000, "val_chars": 20_000,             # dados
    "corpus_tokens": 6_000, "pairs_per_task": 1, "val_pairs_per_task": 1, "per_size": 2, "per_phrasing": 1,
    "passages": 8,                                                                                # acervo do RAG
}
SMOKE_SEEDS = 2          # listas de sementes ficam com as duas primeiras (ainda dá para medir a variação)


def smoke_test() -> bool:
    """True quando LLM_FUMACA=1 (teste de fumaça dos mantenedores): veja `mode_settings`."""
    return os.environ.get("LLM_FUMACA", "").strip().lower() in ("1", "true", "sim")


def mode_settings(settings: dict, mode: str | None = None) -> dict:
    """As configurações de um capítulo para o modo (sem `mode`, o modo em uso): `settings[modo]`.

    Com LLM_FUMACA=1, devolve uma cópia encolhida: cada chave de SMOKE_LIMITS, em qualquer nível, fica com no
    máximo o limite, e as listas de sementes (`seeds`) com SMOKE_SEEDS itens. O resto (tamanho dos modelos, lotes,
    taxas de aprendizado, contexto) é o do modo. Os números de uma execução assim não medem nada.
    """
    cfg = settings[mode or get_mode()]
    if not smoke_test():
        return cfg
    aviso = "LLM_FUMACA=1: teste de fumaça, com poucos passos e poucos dados; os números não medem nada."
    if aviso not in _avisos_dados:
        _avisos_dados.add(aviso)
        print(aviso)
    return _shrink_for_smoke(cfg)


def _shrink_for_smoke(valor, chave: str | None = None):
    """Cópia de `valor` com os limites de SMOKE_LIMITS aplicados (recursiva em dicionários)."""
    if isinstance(valor, dict):
        return {k: _shrink_for_smoke(v, k) for k, v in valor.items()}
    if chave == "seeds":
        return type(valor)(list(valor)[:SMOKE_SEEDS])
    if chave in SMOKE_LIMITS and (valor is None or (isinstance(valor, int) and not isinstance(valor, bool))):
        return SMOKE_LIMITS[chave] if valor is None else min(valor, SMOKE_LIMITS[chave])
    return valor


# %% 00-oficina/notebook.ipynb · célula 79
def save_results(capitulo: str, metricas: dict, tempo_s: float, device: torch.device | None = None) -> Path:
    """Grava `artefatos/resultados/<capitulo>.json` com métricas, tempo, modo e máquina."""
    destino = artifacts_dir() / "resultados" / f"{capitulo}.json"
    destino.parent.mkdir(parents=True, exist_ok=True)
    registro = {
        "capitulo": capitulo,
        "modo": get_mode(),
        "dispositivo": describe_device(device),
        "tempo_s": round(float(tempo_s), 1),
        "metricas": metricas,
        "torch": torch.__version__,
        "data": time.strftime("%Y-%m-%d"),
    }
    if smoke_test():
        registro["fumaca"] = True          # teste de fumaça (LLM_FUMACA=1): números sem valor de medida
    destino.write_text(json.dumps(registro, ensure_ascii=False, indent=2), encoding="utf-8")
    return destino


# %% 00-oficina/notebook.ipynb · célula 81
OFICINA_CHECKS = {
    "capitulo": "00-oficina",
    "tolerancias": {"acuracia_teste_espirais": 0.03, "perda_final_treino": (0.02, 0.25)},
    "conclusoes": {"a rede separa as espirais bem acima do acaso (50%)": "acuracia_teste_espirais >= 0.85"},
}
