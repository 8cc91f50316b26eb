#!/usr/bin/env python3
"""Mede o modo completo numa GPU: roda os notebooks de cima a baixo e grava tempo, pico de memória e métricas.

Para os mantenedores, numa máquina com GPU CUDA. Cada notebook roda num kernel novo, em memória: os arquivos
`.ipynb` não mudam (as saídas gravadas neles são as do modo rápido). O ambiente é LLM_MODO=completo, com os
checkpoints em `artefatos/completo/` (os capítulos 06–08 reaproveitam os do 05 e do 07, como um aluno no Colab).
Para cada capítulo ficam registrados:

- o tempo de parede do notebook inteiro e o pico de memória da GPU (lido do `nvidia-smi` a cada meio segundo,
  então conta também os processos do `torchrun` do 08);
- as métricas que o notebook gravou, copiadas para `artefatos/resultados/completo/<capítulo>.json`.

No fim, uma tabela em Markdown é impressa e gravada em `artefatos/resultados/completo/medicao.md`. Os resultados
do modo rápido, em `artefatos/resultados/*.json`, não são tocados.

Os empréstimos de GPU costumam ser curtos, então a medição tem um orçamento de tempo total (`--orcamento`, padrão
570 s): quando ele acaba, o notebook em execução é interrompido (o kernel recebe um Ctrl-C) e os capítulos que
faltam ficam na tabela como "não rodou". O que já foi medido fica gravado, e a saída termina com código 1.

Os nove capítulos não cabem num orçamento só (numa T4, estimados em mais de uma hora). `--grupos` mostra como
dividi-los em grupos que cabem, cada um, em `--orcamento` (pela estimativa de `ferramentas/estimar_tempos.py`,
dividida por `--aceleracao`, quantas vezes a GPU da medição é mais rápida que uma T4), com o comando de cada grupo;
`--grupo K` mede só o K-ésimo. Os grupos seguem a ordem do curso, e os checkpoints de um grupo ficam em
`SAIDA/completo/` para os seguintes (exceto com pesos sorteados ou fumaça, abaixo: aí cada grupo começa do zero,
como um Colab novo).

Sem acesso ao Hugging Face, `--pesos-sinteticos` põe num espelho temporário os pesos sorteados do GPT-2 124M
(`ferramentas/pesos_gpt2_sinteticos.py`), ao lado dos arquivos de LLM_DADOS_ESPELHO: tempos e memória valem, mas
as métricas dos capítulos que partem do GPT-2 não medem nada (a tabela avisa). O espelho temporário recria as
pastas do espelho de verdade e só liga arquivos, então os pesos sorteados nunca chegam ao espelho de verdade.

Uma execução que não mede o GPT-2 de verdade (`--pesos-sinteticos`, ou `LLM_FUMACA=1`) grava seus checkpoints e
downloads numa pasta temporária, apagada no fim: nenhum checkpoint treinado a partir de pesos sorteados (ou com
poucos passos) fica em `SAIDA/completo/`, onde uma medição de verdade o reaproveitaria. Só os resultados
(marcados com `pesos_gpt2_sinteticos` e `fumaca`) vão para `SAIDA/resultados/completo/`.

Variáveis de ambiente (para rodar sem internet, como no `.ci/run`):
    LLM_DADOS_ESPELHO    pasta com a cópia dos dados (`machado/…`, `gpt2/…`, `Fake.br-Corpus-master.zip` e, se
                         houver, `openai-community/gpt2/model.safetensors`); sem ela, os dados vêm da internet.
                         Com `--pesos-sinteticos`, ela precisa ser uma pasta (sem ela, vale `dados-cache/` do
                         repositório, se existir; senão, um erro explica o que fazer).
    TIKTOKEN_CACHE_DIR   pasta com os arquivos do tokenizador do GPT-2 no formato do cache do tiktoken
                         (por exemplo `$LLM_DADOS_ESPELHO/tiktoken`); sem ela, o tiktoken os baixa.
    LLM_CACHE_DIR        onde guardar os downloads (padrão `dados-cache/`); com `--pesos-sinteticos` ou
                         `LLM_FUMACA=1`, uma pasta temporária.
    LLM_FUMACA=1         ensaio na CPU: todos os caminhos do modo completo com poucos passos (números sem valor).
    LLM_MODO e LLM_ARTEFATOS são definidos pela própria ferramenta (`completo` e `SAIDA/completo`).

Uso:
    python ferramentas/medir_completo.py                          # os nove capítulos (até o orçamento acabar)
    python ferramentas/medir_completo.py --grupos --aceleracao 3  # os grupos que cabem no orçamento, sem rodar
    python ferramentas/medir_completo.py --grupo 2 --aceleracao 3 # mede só o segundo grupo
    python ferramentas/medir_completo.py 05 06 --pesos-sinteticos
    LLM_FUMACA=1 python ferramentas/medir_completo.py --saida /tmp/ensaio   # ensaio na CPU (teste de fumaça)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ / "ferramentas"))
from executar import escolher  # noqa: E402
from pesos_gpt2_sinteticos import caminho_dos_pesos, montar_espelho  # noqa: E402
from pesos_gpt2_sinteticos import escrever as escrever_pesos_sinteticos  # noqa: E402
from resultados import br, resumir  # noqa: E402


class PicoDaGPU:
    """Lê a memória usada da GPU pelo `nvidia-smi` a cada `intervalo` segundos e guarda o maior valor (em GB)."""

    def __init__(self, intervalo: float = 0.5):
        self.intervalo = intervalo
        self.disponivel = shutil.which("nvidia-smi") is not None
        self.pico_gb: float | None = None
        self._parar = threading.Event()
        self._linha: threading.Thread | None = None

    def _ler(self) -> float | None:
        try:
            saida = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                   capture_output=True, text=True, timeout=10).stdout
            return max(float(v) for v in saida.split()) / 1024
        except (OSError, ValueError, subprocess.SubprocessError):
            return None

    def _vigiar_uma_vez(self) -> None:
        usado = self._ler()
        if usado is not None:
            self.pico_gb = usado if self.pico_gb is None else max(self.pico_gb, usado)

    def _vigiar(self) -> None:
        while not self._parar.is_set():
            self._vigiar_uma_vez()
            self._parar.wait(self.intervalo)

    def __enter__(self) -> "PicoDaGPU":
        if self.disponivel:
            self._linha = threading.Thread(target=self._vigiar, daemon=True)
            self._linha.start()
        return self

    def __exit__(self, *_) -> None:
        self._parar.set()
        if self._linha is not None:
            self._linha.join()


def espelho_com_pesos_sinteticos(origem: Path, pasta: Path) -> Path:
    """Um espelho em `pasta` (nova) com as pastas de `origem` recriadas, links só para os arquivos, e os pesos
    sorteados do GPT-2 124M num arquivo novo: nenhuma escrita em `pasta` segue um link de volta para `origem`."""
    montar_espelho(origem, pasta, sem=(caminho_dos_pesos(Path(), "gpt2").as_posix(),))
    escrever_pesos_sinteticos(pasta, "gpt2")
    return pasta


def achar_espelho() -> Path | None:
    """A pasta de LLM_DADOS_ESPELHO (relativa à pasta atual ou à raiz do repositório), se existir."""
    bruto = os.environ.get("LLM_DADOS_ESPELHO")
    if not bruto:
        return None
    for candidato in (Path(bruto), RAIZ / bruto):
        if candidato.is_dir():
            return candidato.resolve()
    return None


def gravar_texto(caminho: Path, texto: str) -> None:
    """Grava `texto` em `caminho` de forma atômica: um `.part` novo ao lado, renomeado no fim."""
    caminho.parent.mkdir(parents=True, exist_ok=True)
    descritor, nome = tempfile.mkstemp(prefix=caminho.name + ".", suffix=".part", dir=caminho.parent)
    try:
        with os.fdopen(descritor, "w", encoding="utf-8") as arquivo:
            arquivo.write(texto)
        os.chmod(nome, 0o644)                                    # o mkstemp cria com 0600
        os.replace(nome, caminho)
    finally:
        Path(nome).unlink(missing_ok=True)


def interromper_kernel(cliente: NotebookClient) -> bool:
    """Manda um Ctrl-C (SIGINT) ao kernel local do `cliente`, como o botão de parar do Jupyter. True se mandou."""
    processo = getattr(getattr(getattr(cliente, "km", None), "provisioner", None), "process", None)
    if processo is None or processo.poll() is not None:
        return False
    processo.send_signal(signal.SIGINT)
    return True


def rodar_capitulo(capitulo: str, tempo_limite: int, prazo: float | None = None) -> tuple[str, float, float | None]:
    """Executa o notebook num kernel novo, sem gravar o arquivo. Devolve (situação, segundos, pico da GPU em GB).

    `tempo_limite` é o teto de cada célula; `prazo`, o do notebook inteiro (segundos): passado o prazo, o kernel
    é interrompido e a situação diz isso.
    """
    caminho = RAIZ / capitulo / "notebook.ipynb"
    nb = nbformat.read(caminho, as_version=4)
    cliente = NotebookClient(nb, timeout=tempo_limite, kernel_name="python3",
                             resources={"metadata": {"path": str(caminho.parent)}})
    interrompido = threading.Event()
    relogio = None
    if prazo is not None:
        relogio = threading.Timer(prazo, lambda: interromper_kernel(cliente) and interrompido.set())
        relogio.daemon = True
        relogio.start()
    inicio = time.perf_counter()
    with PicoDaGPU() as pico:
        try:
            cliente.execute()
            situacao = "ok"
        except CellTimeoutError:
            situacao = f"passou de {tempo_limite} s numa célula"
        except CellExecutionError as erro:
            ultima = [linha for linha in str(erro).strip().splitlines() if linha.strip()][-1:]
            situacao = "erro: " + (ultima[0][:150] if ultima else "uma célula falhou")
        finally:
            if relogio is not None:
                relogio.cancel()
    if interrompido.is_set() and situacao != "ok":
        situacao = f"interrompido: acabou o orçamento ({prazo:.0f} s restavam)"
    return situacao, time.perf_counter() - inicio, pico.pico_gb


def estimativas_s(capitulos: list[str], aceleracao: float = 1.0) -> dict[str, float]:
    """Segundos estimados de cada capítulo no completo: a parte de GPU da estimativa para a T4 dividida pela
    `aceleracao` (a parte fixa, de CPU e preparação, não acelera)."""
    from estimar_tempos import estimar
    segundos = {}
    for cap in capitulos:
        total, partes = estimar(cap)
        segundos[cap] = partes[0][1] + (total - partes[0][1]) / aceleracao
    return segundos


def agrupar(capitulos: list[str], segundos: dict[str, float], orcamento: float,
            folga: float = 0.85) -> list[list[str]]:
    """Grupos consecutivos (na ordem dada) cuja soma estimada cabe em `folga` x `orcamento` (a folga cobre o
    kernel que sobe e a estimativa que erra). Um capítulo que sozinho não cabe fica num grupo só dele."""
    limite = folga * orcamento
    grupos: list[list[str]] = []
    soma = 0.0
    for cap in capitulos:
        if grupos and soma + segundos[cap] <= limite:
            grupos[-1].append(cap)
            soma += segundos[cap]
        else:
            grupos.append([cap])
            soma = segundos[cap]
    return grupos


def mostrar_grupos(grupos: list[list[str]], segundos: dict[str, float], orcamento: float, aceleracao: float,
                   extras: list[str]) -> str:
    linhas = [f"Grupos para um orçamento de {orcamento:.0f} s cada (estimativa da T4 ÷ {br(aceleracao, 1)}):"]
    for i, grupo in enumerate(grupos, 1):
        soma = sum(segundos[c] for c in grupo)
        aviso = "  ← não cabe nem sozinho: aumente --orcamento ou encolha o capítulo" if soma > orcamento else ""
        comando = " ".join(["python ferramentas/medir_completo.py", "--grupo", str(i), "--aceleracao",
                            f"{aceleracao:g}", "--orcamento", f"{orcamento:g}", *extras])
        linhas.append(f"  {i}. {', '.join(grupo)}: ~{soma / 60:.1f} min{aviso}\n     {comando}")
    return "\n".join(linhas)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("capitulos", nargs="*", help="capítulos (nome ou número; padrão: todos)")
    parser.add_argument("--pesos-sinteticos", action="store_true",
                        help="usar pesos sorteados do GPT-2 124M (máquina sem acesso ao Hugging Face)")
    parser.add_argument("--saida", type=Path, default=RAIZ / "artefatos",
                        help="pasta base: checkpoints em SAIDA/completo, resultados em SAIDA/resultados/completo")
    parser.add_argument("--tempo-limite", type=int, default=1800, help="segundos por célula (padrão 1800)")
    parser.add_argument("--orcamento", type=float, default=570,
                        help="segundos para a medição inteira (padrão 570); o que passar disso é interrompido")
    parser.add_argument("--grupos", action="store_true",
                        help="só mostra os grupos de capítulos que cabem, cada um, no orçamento (e o comando de cada)")
    parser.add_argument("--grupo", type=int, metavar="K", help="mede só o K-ésimo grupo (veja --grupos)")
    parser.add_argument("--aceleracao", type=float, default=1.0,
                        help="quantas vezes a GPU da medição é mais rápida que uma T4 (padrão 1; uma H100, ~3)")
    args = parser.parse_args(argv)
    if args.aceleracao <= 0:
        parser.error("--aceleracao precisa ser um número positivo (1 = uma T4)")

    capitulos = escolher(args.capitulos)
    if args.grupos or args.grupo is not None:
        segundos = estimativas_s(capitulos, args.aceleracao)
        grupos = agrupar(capitulos, segundos, args.orcamento)
        if args.grupos:
            extras = (["--pesos-sinteticos"] if args.pesos_sinteticos else []) + list(args.capitulos)
            print(mostrar_grupos(grupos, segundos, args.orcamento, args.aceleracao, extras))
            return 0
        if not 1 <= args.grupo <= len(grupos):
            parser.error(f"--grupo {args.grupo} não existe: com este orçamento há {len(grupos)} grupo(s) "
                         f"(veja --grupos)")
        capitulos = grupos[args.grupo - 1]
        print(f"grupo {args.grupo} de {len(grupos)}: {', '.join(capitulos)}", flush=True)

    fumaca = os.environ.get("LLM_FUMACA", "").strip().lower() in ("1", "true", "sim")
    origem = None
    if args.pesos_sinteticos:
        if os.environ.get("LLM_DADOS_ESPELHO"):
            origem = achar_espelho()
            motivo = f"LLM_DADOS_ESPELHO={os.environ['LLM_DADOS_ESPELHO']!r} não é uma pasta"
        else:                                                    # sem espelho: a cópia local dos downloads
            origem = RAIZ / "dados-cache" if (RAIZ / "dados-cache").is_dir() else None
            motivo = "LLM_DADOS_ESPELHO não está definida e não há dados-cache/ no repositório"
        if origem is None:
            parser.error(f"--pesos-sinteticos precisa do espelho dos dados ({motivo}): os pesos sorteados vão "
                         f"num espelho temporário ao lado de uma cópia dos dados. Aponte LLM_DADOS_ESPELHO para "
                         f"ela, por exemplo LLM_DADOS_ESPELHO=../shared/dados "
                         f"TIKTOKEN_CACHE_DIR=../shared/dados/tiktoken.")

    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "sem GPU CUDA"
    destino = args.saida / "resultados" / "completo"
    destino.mkdir(parents=True, exist_ok=True)
    temporaria = None
    trabalho = args.saida / "completo"
    if args.pesos_sinteticos or fumaca:
        # Checkpoints de pesos sorteados ou de poucos passos não podem ficar onde uma medição de verdade os acharia.
        temporaria = Path(tempfile.mkdtemp(prefix="medir-completo-"))
        trabalho = temporaria / "artefatos"
        os.environ["LLM_CACHE_DIR"] = str(temporaria / "cache")   # os pesos sorteados nunca vão para o cache real
    os.environ.update({"LLM_MODO": "completo", "LLM_ARTEFATOS": str(trabalho), "MPLBACKEND": "Agg",
                       "PYTHONUNBUFFERED": "1"})
    try:
        if origem is not None:
            os.environ["LLM_DADOS_ESPELHO"] = str(espelho_com_pesos_sinteticos(origem, temporaria / "espelho"))
            tiktoken = os.environ.get("TIKTOKEN_CACHE_DIR")
            if tiktoken and Path(tiktoken).is_dir():             # o que o tiktoken gravar fica na temporária
                os.environ["TIKTOKEN_CACHE_DIR"] = str(montar_espelho(Path(tiktoken), temporaria / "tiktoken"))
    except BaseException:
        shutil.rmtree(temporaria, ignore_errors=True)
        raise

    print(f"modo completo em {gpu}" + (" | LLM_FUMACA=1 (ensaio: números sem valor)" if fumaca else ""), flush=True)
    if temporaria is not None:
        print(f"checkpoints e downloads em {temporaria} (apagada no fim; só os resultados ficam em {destino})",
              flush=True)

    linhas = ["| capítulo | situação | tempo (s) | pico da GPU (GB) | métricas |", "|---|---|---|---|---|"]
    falhas = 0
    inicio_total = time.perf_counter()
    try:
        for capitulo in capitulos:
            restante = args.orcamento - (time.perf_counter() - inicio_total)
            if restante <= 0:
                falhas += 1
                linhas.append(f"| {capitulo} | não rodou: acabou o orçamento de {args.orcamento:.0f} s | — | — | — |")
                print(f"{capitulo}: não rodou (acabou o orçamento de {args.orcamento:.0f} s)", flush=True)
                continue
            print(f"{capitulo}...", flush=True)
            gravado = trabalho / "resultados" / f"{capitulo}.json"
            gravado.unlink(missing_ok=True)
            situacao, segundos, pico = rodar_capitulo(capitulo, args.tempo_limite, restante)
            falhas += situacao != "ok"
            metricas = "—"
            if gravado.exists():
                registro = json.loads(gravado.read_text(encoding="utf-8"))
                registro.update({"tempo_notebook_s": round(segundos, 1), "pico_gpu_gb": pico and round(pico, 2),
                                 "pesos_gpt2_sinteticos": args.pesos_sinteticos})
                gravar_texto(destino / gravado.name, json.dumps(registro, ensure_ascii=False, indent=2))
                try:
                    metricas = resumir(registro)
                except SystemExit as erro:
                    metricas = str(erro)
            pico_texto = "—" if pico is None else br(pico, 1)
            linhas.append(f"| {capitulo} | {situacao} | {br(segundos, 1)} | {pico_texto} | {metricas} |")
            print(f"  {situacao} em {segundos:.1f} s; pico da GPU: {pico_texto} GB", flush=True)
    finally:
        if temporaria is not None:
            shutil.rmtree(temporaria, ignore_errors=True)

    total = time.perf_counter() - inicio_total
    cabecalho = [f"Modo completo em {gpu}, {time.strftime('%Y-%m-%d')}, torch {torch.__version__}: "
                 f"{br(total / 60, 1)} min no total (orçamento: {br(args.orcamento / 60, 1)} min)."]
    if args.pesos_sinteticos:
        cabecalho.append("Pesos do GPT-2 sorteados (sem o Hugging Face): as métricas de 06–08 não medem o GPT-2.")
    if fumaca:
        cabecalho.append("LLM_FUMACA=1: ensaio com poucos passos e poucos dados; nenhum número mede nada.")
    texto = "\n".join([*cabecalho, "", *linhas]) + "\n"
    gravar_texto(destino / "medicao.md", texto)
    print("\n" + texto)
    return 1 if falhas else 0


if __name__ == "__main__":
    sys.exit(main())
