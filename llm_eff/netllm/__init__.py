"""NetLLM-style adaptation of a language model to networking tasks (Wu et al., "NetLLM:
Adapting Large Language Models for Networking", SIGCOMM 2024).

    abr.py      adaptive bitrate streaming: Pensieve-style simulator, BBA / rate / robust MPC
    viewport.py 360-degree viewport prediction: traces, windows, baselines, MAE
"""
